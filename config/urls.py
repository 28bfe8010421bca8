from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import views as config_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", config_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("runs/", include("reports.urls")),
    path("integrations/", include("integrations.urls")),
    path("settings/notifications/", include("notifications.urls")),
    path("", include("cohorts.urls")),
]

# Error pages in the site's layout; JSON under /api/ (config/errors.py).
handler500 = "config.errors.server_error"
