from django.urls import path

from reports import change_views, views

app_name = "reports"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/progress/", views.run_progress, name="progress"),
    path("<int:pk>/failures.csv", views.run_failures_csv, name="failures_csv"),
    path("<int:pk>/changes/", change_views.run_changes_list, name="changes"),
]
