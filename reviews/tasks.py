"""Celery entry points for the review desk."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def agreement_compute(report_id: int) -> None:
    """Compute a queued agreement report; a report already claimed or finished is left alone."""
    services.agreement_run(report_id)
