from django.urls import path

from . import views
from .views import annotate as annotate_views
from .views import manage

app_name = "annotator"

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("datasets/new/", views.dataset_create, name="dataset_create"),
    path("d/<slug:slug>/", views.dataset_detail, name="dataset_detail"),
    path("d/<slug:slug>/samples/<int:pk>/", views.sample_detail, name="sample_detail"),
    path("d/<slug:slug>/import/", views.import_create, name="import_create"),
    path("d/<slug:slug>/imports/<int:pk>/", views.import_detail, name="import_detail"),
    path("d/<slug:slug>/members/", manage.members, name="members"),
    path("d/<slug:slug>/members/<int:user_id>/role/", manage.member_role, name="member_role"),
    path("d/<slug:slug>/members/<int:user_id>/remove/", manage.member_remove, name="member_remove"),
    path("d/<slug:slug>/settings/annotation/", manage.annotation_settings, name="annotation_settings"),
    path("d/<slug:slug>/gold/", manage.gold_list, name="gold_list"),
    path("d/<slug:slug>/samples/<int:pk>/gold/", manage.gold_set, name="gold_set"),
    path("d/<slug:slug>/samples/<int:pk>/gold/clear/", manage.gold_clear, name="gold_clear"),
    # annotation page (blind cross-validation)
    path("d/<slug:slug>/annotate/", annotate_views.annotate, name="annotate"),
    path("d/<slug:slug>/annotate/preload/", annotate_views.annotate_preload, name="annotate_preload"),
    path("d/<slug:slug>/annotate/diff/", annotate_views.annotate_diff, name="annotate_diff"),
    path("d/<slug:slug>/annotate/<int:pk>/", annotate_views.annotate_assignment, name="annotate_assignment"),
    path("d/<slug:slug>/annotate/<int:pk>/submit/", annotate_views.annotate_submit, name="annotate_submit"),
    path("d/<slug:slug>/annotate/<int:pk>/skip/", annotate_views.annotate_skip, name="annotate_skip"),
    path("d/<slug:slug>/annotate/<int:pk>/draft/", annotate_views.annotate_draft, name="annotate_draft"),
    path("d/<slug:slug>/my-labels/", annotate_views.my_labels, name="my_labels"),
]
