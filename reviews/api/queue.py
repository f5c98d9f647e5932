"""The conflict queue through the API: open items worst first, in exact keyset (cursor) pages."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination, _reverse_ordering
from rest_framework.utils.urls import remove_query_param
from rest_framework.views import APIView

from annotator.rubric import SCALES

from .. import routing, selectors
from ..models import ReviewItem
from .common import INVALID, NOT_FOUND, ConsensusOutput, reviewable

REASON_CODES = (*routing.SEVERITY, "scale_spread")


class ConflictQueuePagination(CursorPagination):
    """Keyset pagination over the whole queue order (-severity, routed_at, id), so the cursor stays
    exact however many items share a severity, and deciding items while paging skips nothing (DRF's
    own cursor keys on the first field only, with an offset capped at 1000 for ties)."""

    ordering = ("-severity", "routed_at", "id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    template = None

    def paginate_queryset(self, queryset, request, view=None):
        self.request, self.base_url = request, request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        self.cursor = self.decode_cursor(request)
        reverse = bool(self.cursor and self.cursor.reverse)
        key = self._key(self.cursor.position) if self.cursor and self.cursor.position else None
        if key is not None:
            severity, routed_at, pk = key
            if reverse:  # items before the key in queue order
                queryset = queryset.filter(Q(severity__gt=severity) | Q(severity=severity, routed_at__lt=routed_at)
                                           | Q(severity=severity, routed_at=routed_at, id__lt=pk))
            else:
                queryset = queryset.filter(Q(severity__lt=severity) | Q(severity=severity, routed_at__gt=routed_at)
                                           | Q(severity=severity, routed_at=routed_at, id__gt=pk))
        queryset = queryset.order_by(*(_reverse_ordering(self.ordering) if reverse else self.ordering))
        rows = list(queryset[: self.page_size + 1])
        more = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        if reverse:
            self.page.reverse()
            self.has_previous, self.has_next = more, key is not None
        else:
            self.has_next, self.has_previous = more, key is not None
        return self.page

    def get_next_link(self):
        if not self.has_next:
            return None
        if not self.page:  # nothing before the cursor any more: start over at the top
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self.encode_cursor(Cursor(offset=0, reverse=False, position=self._position(self.page[-1])))

    def get_previous_link(self):
        if not self.has_previous:
            return None
        if not self.page:
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self.encode_cursor(Cursor(offset=0, reverse=True, position=self._position(self.page[0])))

    @staticmethod
    def _position(item: ReviewItem) -> str:
        return f"{item.severity}|{item.routed_at.isoformat()}|{item.pk}"

    def _key(self, position: str) -> tuple[int, datetime, int]:
        try:
            severity, routed_at, pk = position.split("|")
            at = datetime.fromisoformat(routed_at)
            if at.tzinfo is None:
                raise ValueError("naive")
            return int(severity), at, int(pk)
        except (TypeError, ValueError):
            raise NotFound(self.invalid_cursor_message) from None


class ConflictItemOutput(serializers.Serializer):
    sample_id = serializers.IntegerField()
    external_id = serializers.CharField(source="sample.external_id")
    version = serializers.IntegerField(source="sample.version", help_text="The sample's version: send it with a decision.")
    severity = serializers.IntegerField()
    reasons = serializers.JSONField(help_text='[{"code": "verdict_split", ...}], worst first.')
    consensus = ConsensusOutput(source="*")
    labels_n = serializers.IntegerField()
    routed_at = serializers.DateTimeField()


class ConflictPageOutput(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ConflictItemOutput(many=True)


# What the queue shows of an item and its sample (a sample's text and source are not loaded).
QUEUE_FIELDS = ("id", "sample", "severity", "reasons", "labels_n", "verdict", "verdict_confidence", "method", *SCALES,
                "difficulty", "routed_at", "sample__id", "sample__external_id", "sample__version")


class ConflictQueueApi(APIView):
    class ConflictQueueFilter(serializers.Serializer):
        reason = serializers.ChoiceField(choices=REASON_CODES, required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("reason", str, enum=list(REASON_CODES), description="Only items with this reason."),
            OpenApiParameter("cursor", str, description="From `next` or `previous`."),
            OpenApiParameter("page_size", int, description=f"Up to {ConflictQueuePagination.max_page_size}."),
        ],
        responses={200: ConflictPageOutput, 400: INVALID, 404: NOT_FOUND}, operation_id="review_conflicts",
        description="Samples waiting for a reviewer, worst first (severity), then oldest.",
    )
    def get(self, request, dataset_id: int):
        dataset = reviewable(request, dataset_id)
        filters = self.ConflictQueueFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = selectors.conflict_queue(dataset, reason=filters.validated_data.get("reason", "")).only(*QUEUE_FIELDS)
        paginator = ConflictQueuePagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(ConflictItemOutput(page, many=True).data)
