from django.urls import path

from . import views

app_name = "annotator"

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("datasets/new/", views.dataset_create, name="dataset_create"),
    path("d/<slug:slug>/", views.dataset_detail, name="dataset_detail"),
    path("d/<slug:slug>/samples/<int:pk>/", views.sample_detail, name="sample_detail"),
    path("d/<slug:slug>/import/", views.import_create, name="import_create"),
    path("d/<slug:slug>/imports/<int:pk>/", views.import_detail, name="import_detail"),
]
