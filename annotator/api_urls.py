from django.urls import path

from . import api

urlpatterns = [
    path("datasets/", api.DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>/", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/samples/", api.SampleListApi.as_view(), name="api-samples"),
    path("datasets/<int:dataset_id>/samples/<int:sample_id>/", api.SampleDetailApi.as_view(), name="api-sample"),
    path("datasets/<int:dataset_id>/imports/", api.ImportListApi.as_view(), name="api-imports"),
    path("datasets/<int:dataset_id>/imports/<int:import_id>/", api.ImportDetailApi.as_view(), name="api-import"),
    # annotation
    path("datasets/<int:dataset_id>/annotation/next/", api.AnnotationNextApi.as_view(), name="api-annotation-next"),
    path("datasets/<int:dataset_id>/annotation/progress/", api.AnnotationProgressApi.as_view(), name="api-annotation-progress"),
    path("datasets/<int:dataset_id>/annotation/settings/", api.AnnotationSettingsApi.as_view(), name="api-annotation-settings"),
    path("datasets/<int:dataset_id>/assignments/<int:assignment_id>/submit/", api.AssignmentSubmitApi.as_view(), name="api-assignment-submit"),
    path("datasets/<int:dataset_id>/assignments/<int:assignment_id>/skip/", api.AssignmentSkipApi.as_view(), name="api-assignment-skip"),
    path("datasets/<int:dataset_id>/assignments/<int:assignment_id>/draft/", api.AssignmentDraftApi.as_view(), name="api-assignment-draft"),
    path("datasets/<int:dataset_id>/labels/mine/", api.MyLabelListApi.as_view(), name="api-labels-mine"),
    path("datasets/<int:dataset_id>/suggestions/", api.SuggestionsAttachApi.as_view(), name="api-suggestions"),
]
