"""Accuracy from a reward or judge model's scores (external consistency and accuracy, row 8 of the
quality table; similarity to a reference answer is in consistency.reference_similarity). Pure Python."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Flag, MetricResult

METRIC = "reward"


def reward_results(scores: Sequence[float | None], *, threshold: float | None = None, model: str = "") -> list[MetricResult]:
    """One MetricResult per score. With a threshold, a score below it is flagged "low_reward" with
    the score and the threshold in the reason (a reward's scale is the model's own, so there is no
    default threshold)."""
    out = []
    for score in scores:
        flags = []
        if score is not None and threshold is not None and score < threshold:
            flags.append(Flag("low_reward", f"reward {score:.2f} < {threshold:g}: the judge model rates this answer poorly"))
        out.append(MetricResult(METRIC, value=score, flags=flags, details={"model": model, "threshold": threshold}))
    return out
