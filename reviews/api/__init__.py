"""The review desk through /api/v1/datasets/{dataset_id}/review/: agreement (the newest report, and
asking for a fresh one), annotator statistics, the conflict queue, one sample's review with its
decisions and audit trail, and the dataset's review rule.

For the dataset's owners and reviewers only: an annotator, like anyone who is not a member, gets 404
(reviewers see annotator names and every label; annotators label blind). One class per operation,
explicit input and output serializers; every lookup goes through the caller's dataset. Decisions take
the sample's `version` (optimistic locking): a stale one answers 409 with the decision that won."""

from .agreement import AgreementApi, AgreementOutput, AnnotatorStatsApi, AnnotatorStatsOutput
from .queue import ConflictItemOutput, ConflictQueueApi, ConflictQueuePagination
from .rule import ReviewSettingsApi, ReviewSettingsOutput
from .samples import AuditTrailApi, DecisionListApi, ReviewDecisionOutput, SampleReviewApi, SampleReviewOutput

__all__ = [
    "AgreementApi", "AgreementOutput", "AnnotatorStatsApi", "AnnotatorStatsOutput", "AuditTrailApi", "ConflictItemOutput",
    "ConflictQueueApi", "ConflictQueuePagination", "DecisionListApi", "ReviewDecisionOutput", "ReviewSettingsApi",
    "ReviewSettingsOutput", "SampleReviewApi", "SampleReviewOutput",
]
