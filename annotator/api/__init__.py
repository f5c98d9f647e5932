"""REST API under /api/v1/: one class per operation, explicit input and output serializers, every
lookup scoped to the caller's datasets (a foreign id answers 404).

- `datasets`: datasets, samples, imports;
- `annotation`: the next sample, submit, skip, drafts, own labels and progress, settings, suggestions.
"""

from .annotation import (
    AnnotationNextApi,
    AnnotationProgressApi,
    AnnotationSettingsApi,
    AssignmentDraftApi,
    AssignmentSkipApi,
    AssignmentSubmitApi,
    MyLabelListApi,
    SuggestionsAttachApi,
)
from .datasets import (
    DatasetDetailApi,
    DatasetListApi,
    DatasetListOutput,
    DatasetOutput,
    ImportDetailApi,
    ImportErrorOutput,
    ImportJobOutput,
    ImportListApi,
    MessageSerializer,
    SampleDetailApi,
    SampleDetailOutput,
    SampleListApi,
    SampleOutput,
    SamplePagination,
)

__all__ = [
    "AnnotationNextApi", "AnnotationProgressApi", "AnnotationSettingsApi", "AssignmentDraftApi", "AssignmentSkipApi",
    "AssignmentSubmitApi", "DatasetDetailApi", "DatasetListApi", "DatasetListOutput", "DatasetOutput", "ImportDetailApi",
    "ImportErrorOutput", "ImportJobOutput", "ImportListApi", "MessageSerializer", "MyLabelListApi", "SampleDetailApi",
    "SampleDetailOutput", "SampleListApi", "SampleOutput", "SamplePagination", "SuggestionsAttachApi",
]
