"""Agreement coefficients against published values and the reference libraries."""

from __future__ import annotations

import numpy as np
import pytest

from reviews import agreement

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4-coder, 12-unit example.
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)])
def test_krippendorff_alpha_matches_the_published_example(level, published):
    assert round(agreement.krippendorff_alpha(KRIPPENDORFF_2011, level), 3) == published


def test_alpha_is_undefined_without_pairable_units_or_variation():
    assert agreement.krippendorff_alpha(np.array([[1, NAN], [NAN, 2]])) is None
    assert agreement.krippendorff_alpha(np.array([[3, 3], [3, 3]])) is None
    with pytest.raises(ValueError, match="level"):
        agreement.krippendorff_alpha(KRIPPENDORFF_2011, "fuzzy")


def test_cohen_kappa_matches_scikit_learn_and_a_hand_computed_value():
    # 10 units; observed agreement 0.8; both annotators say "yes" 5 times -> expected 0.5 -> kappa 0.6
    a = ["y", "y", "y", "y", "y", "n", "n", "n", "n", "n"]
    b = ["y", "y", "y", "y", "n", "y", "n", "n", "n", "n"]
    assert agreement.cohen_kappa(a, b) == pytest.approx(0.6)
    x, y = [1, 2, 3, 4, 5, 5, 4, None], [1, 2, 4, 4, 5, 3, 4, 2]
    from sklearn.metrics import cohen_kappa_score

    assert agreement.cohen_kappa(x, y, weights="quadratic") == pytest.approx(cohen_kappa_score(x[:7], y[:7], weights="quadratic"))


def test_fleiss_kappa_matches_the_wikipedia_example():
    # Fleiss' kappa article: 10 subjects, 14 raters, 5 categories -> kappa 0.210 (from its count table)
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    matrix = np.array([[c for c, n in enumerate(row) for _ in range(n)] for row in counts], dtype=float).T
    assert round(agreement.fleiss_kappa(matrix), 3) == 0.210


def test_bootstrap_interval_brackets_the_value_and_is_reproducible():
    rng = np.random.default_rng(1)
    truth = rng.integers(1, 6, size=200)
    noisy = np.where(rng.random(200) < 0.8, truth, rng.integers(1, 6, size=200))
    matrix = np.vstack([truth, noisy]).astype(float)
    first = agreement.bootstrap(matrix, lambda m: agreement.krippendorff_alpha(m, "ordinal"), resamples=200, seed=7)
    again = agreement.bootstrap(matrix, lambda m: agreement.krippendorff_alpha(m, "ordinal"), resamples=200, seed=7)
    assert first == again and first.n == 200
    assert first.low < first.value < first.high and first.high - first.low < 0.2


def test_codes_map_any_labels_and_keep_missing():
    matrix, values = agreement.codes([["accept", None, "reject"], ["accept", "needs_fix", float("nan")]])
    assert values == ["accept", "needs_fix", "reject"]
    assert np.array_equal(np.isnan(matrix), [[False, True, False], [False, False, True]])
    assert matrix[0, 2] == 2 and matrix[1, 1] == 1
