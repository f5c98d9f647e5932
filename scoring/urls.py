from django.urls import path, register_converter

from . import views


class ReportFormat:
    regex = "jsonl|csv"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ReportFormat, "any_fmt")

app_name = "scoring"

urlpatterns = [
    path("d/<slug:slug>/score/", views.run_start, name="run_start"),
    path("d/<slug:slug>/quality/", views.quality, name="quality"),
    path("d/<slug:slug>/quality/status/", views.run_status, name="run_status"),
    path("d/<slug:slug>/quality/report.<any_fmt:fmt>", views.report_download, name="report"),
]
