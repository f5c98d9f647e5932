"""Celery entry points for exports (queue cpu)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def export_build_task(export_id: int) -> str | None:
    """Build an export. Safe to run twice: a finished export, or one another worker is building now,
    is left alone; one left "building" by a worker that died is built again from scratch."""
    export = services.export_build(export_id=export_id)
    return export.status if export is not None else None
