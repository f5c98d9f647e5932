"""The review dashboard pages."""

from django.urls import path

from .views import dashboard

app_name = "dashboard"

urlpatterns = [
    path("d/<slug:slug>/dashboard/", dashboard.index, name="index"),
    path("d/<slug:slug>/dashboard/agreement/", dashboard.agreement, name="agreement"),
]
