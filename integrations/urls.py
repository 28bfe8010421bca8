from django.urls import path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("openclass/cohorts/<int:pk>/sync/", views.openclass_sync_now, name="openclass_sync"),
]
