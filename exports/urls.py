from django.urls import path

from . import views

app_name = "exports"

urlpatterns = [
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("d/<slug:slug>/exports/", views.export_list_page, name="export_list"),
    path("d/<slug:slug>/exports/new/", views.export_new, name="export_new"),
    path("d/<slug:slug>/exports/preview/", views.export_preview, name="export_preview"),
    path("d/<slug:slug>/exports/<int:pk>/", views.export_detail, name="export_detail"),
    path("d/<slug:slug>/exports/<int:pk>/token/", views.export_token, name="export_token"),
]
