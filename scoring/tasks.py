"""Celery entry points for scoring. Tasks named gpu_* go to the gpu queue (see CELERY_TASK_ROUTES).

A lost database connection or a restarting database (OperationalError, InterfaceError) is retried
with backoff, up to TRANSIENT_RETRIES times, before it ends the run; any other exception ends the
run at once, with its message in the run's errors."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, connections

from . import services

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)
TRANSIENT_RETRIES = 5


def _guarded(task, run_id_of, fn, *args):
    try:
        return fn(*args)
    except TRANSIENT as exc:
        if task.request.retries < TRANSIENT_RETRIES:
            logger.warning("scoring task %s: database error, retry %d of %d: %s", task.name, task.request.retries + 1, TRANSIENT_RETRIES, exc)
            for conn in connections.all(initialized_only=True):
                if not conn.in_atomic_block:  # a broken connection is replaced on the next query
                    conn.close()
            raise task.retry(exc=exc, countdown=min(60, 2 ** task.request.retries)) from exc
        _fail(run_id_of, args, exc)
        raise
    except Exception as exc:  # noqa: BLE001 - end the run visibly, then surface the bug
        _fail(run_id_of, args, exc)
        raise


def _fail(run_id_of, args, exc: Exception) -> None:
    logger.exception("scoring task crashed")
    try:
        run_id = run_id_of(*args)
        if run_id is not None:
            services.run_fail(run_id=run_id, message=f"internal error: {type(exc).__name__}: {exc}")
    except TRANSIENT:  # the database is still away: the message is redelivered or the run shows as waiting
        logger.exception("could not mark the run failed")


def _run_of_chunk(chunk_id: int) -> int | None:
    from .models import ScoringChunk

    return ScoringChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=TRANSIENT_RETRIES)
def run_advance(self, run_id: int) -> None:
    _guarded(self, lambda r: r, lambda r: services.run_advance(run_id=r), run_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=TRANSIENT_RETRIES)
def score_chunk(self, chunk_id: int) -> str:
    return _guarded(self, _run_of_chunk, lambda c: services.chunk_run(chunk_id=c), chunk_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=TRANSIENT_RETRIES)
def gpu_score_chunk(self, chunk_id: int) -> str:
    return _guarded(self, _run_of_chunk, lambda c: services.chunk_run(chunk_id=c), chunk_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=TRANSIENT_RETRIES)
def score_dataset(self, run_id: int) -> str:
    return _guarded(self, lambda r: r, lambda r: services.dataset_stage_run(run_id=r), run_id)
