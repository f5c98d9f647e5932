"""Inter-annotator agreement, by well-kept libraries rather than re-derived formulas: Krippendorff's
alpha (the `krippendorff` package), Cohen's kappa (scikit-learn, weighted for ordinal scales),
Fleiss' kappa (statsmodels), each with a bootstrap 95% confidence interval over units and the number
of units behind it. Plain Python and NumPy in, plain numbers out: nothing here touches Django.

A reliability matrix has one row per annotator and one column per unit (sample); a missing label is
NaN. Values are codes: integers for the 1-5 scales, or any hashable for nominal fields (they are
mapped to integers here)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int  # units behind the value

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def codes(matrix: Sequence[Sequence[object]]) -> tuple[np.ndarray, list]:
    """Map any labels (None or NaN for missing) to float codes 0..k-1 in sorted order of the
    distinct values; returns the float matrix (NaN for missing) and the values in code order."""
    values = sorted({v for row in matrix for v in row if not _missing(v)}, key=lambda v: (str(type(v)), v))
    index = {v: i for i, v in enumerate(values)}
    out = np.array([[np.nan if _missing(v) else index[v] for v in row] for row in matrix], dtype=float)
    return out, values


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pairable(matrix: np.ndarray) -> np.ndarray:
    """Units (columns) with at least two labels: the only ones that carry agreement."""
    return np.where((~np.isnan(matrix)).sum(axis=0) >= 2)[0]


def krippendorff_alpha(matrix: np.ndarray, level: str = "nominal", *, value_domain: Sequence | None = None) -> float | None:
    """Krippendorff's alpha of a reliability matrix (annotators x units, NaN for missing)."""
    import krippendorff

    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    matrix = np.asarray(matrix, dtype=float)
    used = matrix[:, _pairable(matrix)]
    if used.shape[1] == 0 or len(np.unique(used[~np.isnan(used)])) < 2:
        return None  # no pairable units, or a single value everywhere: alpha is undefined
    kw = {"value_domain": list(value_domain)} if value_domain is not None else {}
    return float(krippendorff.alpha(reliability_data=used, level_of_measurement=level, **kw))


def cohen_kappa(a: Sequence, b: Sequence, *, weights: str | None = None) -> float | None:
    """Cohen's kappa of two annotators over the units both labelled (None/NaN skipped); `weights`
    "linear" or "quadratic" for ordinal scales."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not _missing(x) and not _missing(y)]
    if len(pairs) < 2 or len({p for pair in pairs for p in pair}) < 2:
        return None
    xs, ys = zip(*pairs, strict=True)
    value = cohen_kappa_score(list(xs), list(ys), weights=weights)
    return None if math.isnan(value) else float(value)


def fleiss_kappa(matrix: np.ndarray) -> float | None:
    """Fleiss' kappa over the units every annotator labelled (it needs the same number of labels per
    unit); None when fewer than two such units or annotators."""
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    matrix = np.asarray(matrix, dtype=float)
    full = matrix[:, ~np.isnan(matrix).any(axis=0)]
    if full.shape[0] < 2 or full.shape[1] < 2:
        return None
    table, _categories = aggregate_raters(full.T.astype(int))
    with np.errstate(invalid="ignore", divide="ignore"):  # one category everywhere: undefined, said as None
        value = sm_fleiss(table, method="fleiss")
    return None if math.isnan(value) else float(value)


def bootstrap(matrix: np.ndarray, statistic: Callable[[np.ndarray], float | None], *, resamples: int = 1000,
              seed: int = 0, confidence: float = 0.95) -> Estimate:
    """`statistic` on the matrix, with a percentile bootstrap interval from resampling units (columns
    with at least two labels) with replacement; the seed makes the interval reproducible."""
    matrix = np.asarray(matrix, dtype=float)
    units = _pairable(matrix)
    value = statistic(matrix[:, units]) if len(units) else None
    if value is None or len(units) < 2:
        return Estimate(value=value, low=None, high=None, n=len(units))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        sample = matrix[:, rng.choice(units, size=len(units), replace=True)]
        stat = statistic(sample)
        if stat is not None and not math.isnan(stat):
            draws.append(stat)
    if not draws:
        return Estimate(value=value, low=None, high=None, n=len(units))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Estimate(value=value, low=float(low), high=float(high), n=len(units))
