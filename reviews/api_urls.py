"""The review desk under /api/v1/ (owners and reviewers of the dataset; anyone else gets 404)."""

from django.urls import path

from . import api

REVIEW = "datasets/<int:dataset_id>/review/"
SAMPLE = REVIEW + "samples/<int:sample_id>/"

urlpatterns = [
    path(REVIEW + "agreement/", api.AgreementApi.as_view(), name="api-review-agreement"),
    path(REVIEW + "annotators/", api.AnnotatorStatsApi.as_view(), name="api-review-annotators"),
    path(REVIEW + "conflicts/", api.ConflictQueueApi.as_view(), name="api-review-conflicts"),
    path(REVIEW + "settings/", api.ReviewSettingsApi.as_view(), name="api-review-settings"),
    path(SAMPLE, api.SampleReviewApi.as_view(), name="api-review-sample"),
    path(SAMPLE + "decisions/", api.DecisionListApi.as_view(), name="api-review-decisions"),
    path(SAMPLE + "audit/", api.AuditTrailApi.as_view(), name="api-review-audit"),
]
