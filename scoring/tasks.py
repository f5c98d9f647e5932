"""Celery entry points for scoring. Tasks named gpu_* go to the gpu queue (see CELERY_TASK_ROUTES)."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)


def _guarded(run_id_of, fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - end the run visibly, then surface the bug
        run_id = run_id_of(*args)
        logger.exception("scoring task crashed", extra={"run": run_id})
        if run_id is not None:
            services.run_fail(run_id=run_id, message=f"internal error: {type(exc).__name__}: {exc}")
        raise


def _run_of_chunk(chunk_id: int) -> int | None:
    from .models import ScoringChunk

    return ScoringChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_advance(run_id: int) -> None:
    _guarded(lambda r: r, lambda r: services.run_advance(run_id=r), run_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def score_chunk(chunk_id: int) -> str:
    return _guarded(_run_of_chunk, lambda c: services.chunk_run(chunk_id=c), chunk_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def gpu_score_chunk(chunk_id: int) -> str:
    return _guarded(_run_of_chunk, lambda c: services.chunk_run(chunk_id=c), chunk_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def score_dataset(run_id: int) -> str:
    return _guarded(lambda r: r, lambda r: services.dataset_stage_run(run_id=r), run_id)
