"""How well each automatic metric agrees with expert judgement: Spearman's rank correlation between
the metric and the experts' mean score on each rubric scale, and the ROC AUC of the metric as a
detector of samples the experts did not accept. Imports nothing from Django.

The expert side is one record per labelled sample: mean accuracy, completeness and conciseness over
its annotators' current labels (None where nobody gave that scale) and `not_accepted`: whether the
majority verdict is not "accept" (reject or needs fix; a tie counts as not accepted), or None when no
label has a verdict (those samples count for the correlations only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCALES = ("accuracy", "completeness", "conciseness")
MIN_PAIRS = 5


@dataclass(frozen=True)
class ExpertView:
    accuracy: float | None
    completeness: float | None
    conciseness: float | None
    not_accepted: bool | None  # None: no label gave a verdict (labels imported from another tool)
    labels: int


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho (ties get average ranks), or None when it is undefined (too few pairs, or one
    side constant)."""
    from scipy.stats import spearmanr

    if len(x) < MIN_PAIRS or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = spearmanr(x, y).statistic
    return None if rho is None or math.isnan(rho) else float(rho)


def auc(scores: list[float], positives: list[bool]) -> float | None:
    """ROC AUC of `scores` for telling positives from negatives (1.0: every positive scores higher;
    0.5: no better than chance; below 0.5: the metric runs the other way). None without both kinds."""
    from sklearn.metrics import roc_auc_score

    if len(scores) < MIN_PAIRS or all(positives) or not any(positives):
        return None
    return float(roc_auc_score(np.asarray(positives, dtype=bool), np.asarray(scores, dtype=float)))


def compare(metric_values: dict[str, dict[int, float]], experts: dict[int, ExpertView]) -> list[dict]:
    """One row per metric: `metric`, `n` (labelled samples with a value), `spearman` {scale: rho or
    None}, `auc` (for "experts did not accept"), and `strongest` (the scale with the largest |rho|)."""
    rows = []
    for name in sorted(metric_values):
        values = metric_values[name]
        ids = [i for i in values if i in experts and values[i] is not None and not math.isnan(values[i])]
        if not ids:
            continue
        rhos = {}
        for scale in SCALES:
            pairs = [(values[i], getattr(experts[i], scale)) for i in ids if getattr(experts[i], scale) is not None]
            rhos[scale] = spearman([p[0] for p in pairs], [p[1] for p in pairs])
        judged = [i for i in ids if experts[i].not_accepted is not None]
        area = auc([values[i] for i in judged], [bool(experts[i].not_accepted) for i in judged])
        known = {k: v for k, v in rhos.items() if v is not None}
        rows.append({
            "metric": name,
            "n": len(ids),
            "spearman": rhos,
            "auc": area,
            "strongest": max(known, key=lambda k: abs(known[k])) if known else None,
        })
    return rows


def flag_lift(flagged: dict[str, set[int]], experts: dict[int, ExpertView]) -> list[dict]:
    """One row per flag rule: how many labelled samples it flagged, the share of those the experts
    did not accept, and the same share among labelled samples it did not flag."""
    rows = []
    labelled = {i for i, e in experts.items() if e.not_accepted is not None}
    for rule in sorted(flagged):
        hit = flagged[rule] & labelled
        miss = labelled - hit
        if not hit:
            continue

        def share(ids: set[int]) -> float | None:
            return sum(experts[i].not_accepted for i in ids) / len(ids) if ids else None

        rows.append({"rule": rule, "flagged": len(hit), "not_accepted_flagged": share(hit), "not_accepted_unflagged": share(miss)})
    return rows
