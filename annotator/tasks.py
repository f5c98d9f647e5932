"""Celery entry points for the annotator app: take ids, load, check state, call a service."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services
from .models import ImportJob

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, queue="cpu")
def import_run(job_id: int) -> str:
    """Run an import job. Safe to run twice: a finished job is left alone, and a job whose worker
    died is redone from the start (its transaction was rolled back, so nothing is doubled)."""
    job = services.import_job_claim(job_id=job_id)
    if job is None:
        finished = ImportJob.objects.filter(pk=job_id, status__in=[ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED]).exists()
        logger.info("import job %s %s: nothing to do", job_id, "already finished" if finished else "running in another worker")
        return "finished" if finished else "busy"
    try:
        result = services.import_job_run(job=job)
    except Exception as exc:  # noqa: BLE001 - a bug must still end the job visibly, then surface
        logger.exception("import job crashed", extra={"job": job_id})
        services.import_job_fail(job_id=job_id, message=f"internal error: {type(exc).__name__}: {exc}")
        raise
    if result is None:
        logger.info("import job %s running in another worker: nothing to do", job_id)
        return "busy"
    return result.status
