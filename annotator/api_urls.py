from django.urls import path

from . import api

urlpatterns = [
    path("datasets/", api.DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>/", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/samples/", api.SampleListApi.as_view(), name="api-samples"),
    path("datasets/<int:dataset_id>/samples/<int:sample_id>/", api.SampleDetailApi.as_view(), name="api-sample"),
    path("datasets/<int:dataset_id>/imports/", api.ImportListApi.as_view(), name="api-imports"),
    path("datasets/<int:dataset_id>/imports/<int:import_id>/", api.ImportDetailApi.as_view(), name="api-import"),
]
