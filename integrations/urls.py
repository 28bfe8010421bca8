from django.urls import path

from integrations import views
from integrations.canvas import views as canvas_views

app_name = "integrations"

urlpatterns = [
    path("openclass/cohorts/<int:pk>/sync/", views.openclass_sync_now, name="openclass_sync"),
    path("apex/", views.apex_upload, name="apex_upload"),
    path("apex/rosters/<int:pk>/", views.apex_preview, name="apex_preview"),
    path("apex/rosters/<int:pk>/confirm/", views.apex_confirm, name="apex_confirm"),
    path("apex/runs/<int:pk>/resume/", views.apex_resume, name="apex_resume"),
    path("apex/runs/<int:pk>/error_log.csv", views.apex_error_log, name="apex_error_log"),
    path("canvas/", canvas_views.canvas_page, name="canvas"),
    path("canvas/cohorts/<int:pk>/sync/", canvas_views.canvas_sync_now, name="canvas_sync"),
    path("canvas/runs/<int:pk>/retry/", canvas_views.canvas_retry, name="canvas_retry"),
    path(
        "canvas/schedules/<int:pk>/delete/",
        canvas_views.canvas_schedule_delete,
        name="canvas_schedule_delete",
    ),
]
