from django.urls import path

from cohorts import api, views

app_name = "cohorts"

cohort = "cohorts/<int:pk>"
student = f"{cohort}/students/<int:student_id>"

urlpatterns = [
    path("", views.cohort_list, name="list"),
    path("cohorts.csv", views.cohort_list_csv, name="list_csv"),
    path(f"{cohort}/", views.cohort_detail, name="detail"),
    path(f"{cohort}/thresholds/", views.cohort_thresholds, name="thresholds"),
    path(f"{cohort}/<slug:table>.csv", views.cohort_table_csv, name="table_csv"),
    path(f"{student}/", views.cohort_student, name="student"),
    path(f"{student}/<slug:table>.csv", views.cohort_student_csv, name="student_csv"),
    # The JSON API (config/urls.py includes this module at the root).
    path("api/", api.index, name="api_index"),
    path("api/openapi.json", api.openapi, name="api_openapi"),
    path("api/cohorts", api.cohorts_list, name="api_cohorts"),
    path("api/cohorts/<int:pk>", api.cohort_detail, name="api_cohort"),
    path("api/cohorts/<int:pk>/students", api.students_list, name="api_students"),
    path("api/cohorts/<int:pk>/assignments", api.assignments_list, name="api_assignments"),
    path("api/cohorts/<int:pk>/progressions", api.progressions_list, name="api_progressions"),
    path(
        "api/cohorts/<int:pk>/progress-summary",
        api.progress_summary,
        name="api_progress_summary",
    ),
    path(
        "api/cohorts/<int:pk>/metrics/completion",
        api.metrics_completion,
        name="api_metrics_completion",
    ),
    path(
        "api/cohorts/<int:pk>/metrics/blockers",
        api.metrics_blockers,
        name="api_metrics_blockers",
    ),
    path(
        "api/cohorts/<int:pk>/metrics/student-health",
        api.metrics_student_health,
        name="api_metrics_student_health",
    ),
    path(
        "api/cohorts/<int:pk>/metrics/progress-over-time",
        api.metrics_progress_over_time,
        name="api_metrics_progress_over_time",
    ),
]
