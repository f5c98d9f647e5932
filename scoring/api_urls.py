from django.urls import path

from . import api

urlpatterns = [
    path("datasets/<int:dataset_id>/scoring-runs/", api.RunListApi.as_view(), name="api-scoring-runs"),
    path("datasets/<int:dataset_id>/scoring-runs/<int:run_id>/", api.RunDetailApi.as_view(), name="api-scoring-run"),
    path("datasets/<int:dataset_id>/samples/<int:sample_id>/scores/", api.SampleScoresApi.as_view(), name="api-sample-scores"),
    path("datasets/<int:dataset_id>/quality/", api.QualityApi.as_view(), name="api-quality"),
]
