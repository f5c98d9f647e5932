"""Diversity metrics on hand-built vectors: k rule, clusters, entropy, Vendi score, summaries, flags."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scoring.metrics import diversity as dv
from scoring.metrics.base import Flag


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blobs(sizes: list[int], d: int = 16, spread: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around len(sizes) orthogonal directions; the true blob of each row."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for b, size in enumerate(sizes):
        centre = np.zeros(d)
        centre[b] = 1.0
        rows.append(centre + spread * rng.standard_normal((size, d)))
        truth += [b] * size
    return unit_rows(np.vstack(rows)), np.array(truth)


# --------------------------------------------------------------------------------------------------
# choose_k


@pytest.mark.parametrize(
    ("n", "k"),
    [(0, 0), (1, 1), (2, 2), (3, 2), (12, 2), (13, 3), (100, 7), (1000, 22), (52_000, 161), (79_600, 199), (79_601, 200), (1_000_000, 200)],
)
def test_choose_k_follows_the_sqrt_half_n_rule(n, k):
    assert dv.choose_k(n) == k


# --------------------------------------------------------------------------------------------------
# kmeans_clusters


def test_kmeans_finds_separated_blobs_and_numbers_clusters_by_size():
    # given three blobs of 10, 30 and 20 unit vectors
    x, truth = blobs([10, 30, 20])
    # when
    result = dv.kmeans_clusters(x, k=3)
    # then the clusters are the blobs, the largest is 0
    assert result.k == 3
    assert result.sizes == {0: 30, 1: 20, 2: 10}
    expected = np.array([2] * 10 + [0] * 30 + [1] * 20)
    assert result.labels.tolist() == expected.tolist()
    assert result.centroids.shape == (3, 16)
    assert result.distance_to_centroid.shape == (60,)
    direct = np.linalg.norm(x - result.centroids[result.labels], axis=1)
    assert np.allclose(result.distance_to_centroid, direct, atol=1e-6)
    assert result.distance_to_centroid.max() < 0.5


def test_kmeans_default_k_and_determinism():
    x, _ = blobs([40, 40, 40, 40], seed=3)
    first = dv.kmeans_clusters(x, seed=7)
    second = dv.kmeans_clusters(x, seed=7)
    assert first.k == dv.choose_k(160) == 9
    assert first.labels.tolist() == second.labels.tolist()
    assert np.array_equal(first.centroids, second.centroids)
    assert sum(first.sizes.values()) == 160


def test_kmeans_minibatch_path_is_deterministic(monkeypatch):
    # given the MiniBatchKMeans path forced for a small set
    monkeypatch.setattr(dv, "MINIBATCH_ABOVE", 50)
    x, truth = blobs([60, 40, 20], seed=1)
    first = dv.kmeans_clusters(x, k=3, seed=0)
    second = dv.kmeans_clusters(x, k=3, seed=0)
    assert first.labels.tolist() == second.labels.tolist()
    assert first.sizes == {0: 60, 1: 40, 2: 20}


def test_kmeans_small_and_degenerate_inputs():
    empty = dv.kmeans_clusters(np.zeros((0, 4), dtype=np.float32))
    assert (empty.k, empty.labels.tolist(), empty.sizes, empty.centroids.shape) == (0, [], {}, (0, 4))
    one = dv.kmeans_clusters(unit_rows(np.array([[1.0, 2.0, 2.0]])))
    assert (one.k, one.labels.tolist(), one.sizes) == (1, [0], {0: 1})
    assert one.distance_to_centroid.tolist() == [0.0]
    # five rows but only two distinct vectors: k is lowered to 2, no empty cluster
    x = unit_rows(np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32))
    same = dv.kmeans_clusters(x, k=4)
    assert same.k == 2
    assert same.labels.tolist() == [0, 0, 1, 0, 1]
    assert same.sizes == {0: 3, 1: 2}
    with pytest.raises(ValueError):
        dv.kmeans_clusters(np.zeros(3))


# --------------------------------------------------------------------------------------------------
# entropy, distributions, histogram


def test_entropy_and_normalized_entropy():
    assert dv.entropy(["a", "a", "b", "b"]) == pytest.approx(math.log(2))
    assert dv.entropy([3, 3, 3]) == 0.0
    assert dv.entropy([]) == 0.0
    assert dv.entropy(np.array([0, 1, 2, 3])) == pytest.approx(math.log(4))
    assert dv.normalized_entropy(["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert dv.normalized_entropy(["a", "a", "b", "b"], k=4) == pytest.approx(0.5)
    assert dv.normalized_entropy(["x"] * 5) == 0.0
    assert dv.normalized_entropy(["a", "a", "a", "b"]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2))
    with pytest.raises(ValueError):
        dv.normalized_entropy(["a", "b", "c"], k=2)


def test_distribution_most_frequent_first_then_by_name():
    assert list(dv.distribution(["qa", "code", "qa", "math", "code", "qa"]).items()) == [("qa", 3), ("code", 2), ("math", 1)]
    assert list(dv.distribution(["zh", "en"]).items()) == [("en", 1), ("zh", 1)]
    assert dv.distribution([]) == {}


def test_length_histogram_fixed_bins():
    hist = dv.length_histogram([0, 15, 16, 31, 100, 2047, 2048, 100_000])
    assert hist == {
        "0-15": 2,
        "16-31": 2,
        "32-63": 0,
        "64-127": 1,
        "128-255": 0,
        "256-511": 0,
        "512-1023": 0,
        "1024-2047": 1,
        "2048+": 2,
    }
    assert dv.length_histogram([5, 10, 25], bins=[0, 10, 20]) == {"0-9": 1, "10-19": 1}
    with pytest.raises(ValueError):
        dv.length_histogram([-1])


# --------------------------------------------------------------------------------------------------
# Vendi score


def test_vendi_of_identical_vectors_is_one():
    x = unit_rows(np.tile([[0.6, 0.8, 0.0]], (50, 1)))
    assert dv.vendi_score(x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_vendi_of_orthogonal_vectors_is_n(n):
    x = np.eye(8, dtype=np.float32)[:n]
    assert dv.vendi_score(x) == pytest.approx(n, rel=1e-9)


def test_vendi_of_two_equal_halves_is_two():
    x = np.array([[1, 0, 0]] * 5 + [[0, 0, 1]] * 5, dtype=np.float32)
    assert dv.vendi_score(x) == pytest.approx(2.0, rel=1e-9)


def test_vendi_matches_the_direct_n_by_n_computation():
    rng = np.random.default_rng(42)
    x = unit_rows(rng.standard_normal((60, 12)))
    assert dv.vendi_score(x) == pytest.approx(dv.vendi_score_direct(x), rel=1e-6)
    y = unit_rows(rng.standard_normal((10, 40)))  # n < d
    assert dv.vendi_score(y) == pytest.approx(dv.vendi_score_direct(y), rel=1e-6)
    assert 1.0 < dv.vendi_score(y) <= 10.0


def test_vendi_accumulates_in_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    x = unit_rows(rng.standard_normal((100, 6)))
    whole = dv.vendi_score(x)
    monkeypatch.setattr(dv, "_VENDI_CHUNK", 7)
    assert dv.vendi_score(x) == pytest.approx(whole, rel=1e-12)
    assert dv.vendi_score(np.zeros((0, 6), dtype=np.float32)) == 0.0


# --------------------------------------------------------------------------------------------------
# Summary


def test_diversity_summary_is_json_and_complete():
    inst, _ = blobs([12, 8], d=8, seed=2)
    ans = np.eye(8, dtype=np.float32)[np.arange(20) % 4]
    summary = dv.diversity_summary(inst, ans, ["qa"] * 15 + ["code"] * 5, ["en"] * 10 + ["zh"] * 9 + [None], [10] * 10 + [40] * 10, seed=0)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["n"] == 20
    assert summary["instructions"]["k"] == dv.choose_k(20) == 3
    assert sum(summary["instructions"]["cluster_sizes"].values()) == 20
    assert summary["answers"]["vendi_score"] == pytest.approx(4.0, rel=1e-5)
    assert summary["answers"]["k"] == 3
    assert summary["task_types"] == {"qa": 15, "code": 5}
    assert summary["languages"] == {"en": 10, "zh": 9, "": 1}
    assert summary["task_type_normalized_entropy"] == pytest.approx(
        round(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2), 6)
    )
    assert summary["answer_length"] == {"median": 25.0, "mean": 25.0}
    assert summary["answer_length_histogram"]["0-15"] == 10
    assert summary["answer_length_histogram"]["32-63"] == 10
    assert set(summary["instructions"]) == {"k", "cluster_sizes", "entropy", "normalized_entropy", "vendi_score"}


def test_diversity_summary_uses_given_clusters_and_checks_lengths():
    x = np.eye(4, dtype=np.float32)
    clusters = dv.ClusterResult(np.array([0, 0, 1, 1]), np.zeros((2, 4), np.float32), 2, {0: 2, 1: 2}, np.zeros(4, np.float32))
    summary = dv.diversity_summary(x, x, ["a"] * 4, ["en"] * 4, [1, 2, 3, 4], instruction_clusters=clusters, answer_clusters=clusters)
    assert summary["instructions"]["cluster_sizes"] == {"0": 2, "1": 2}
    assert summary["instructions"]["entropy"] == pytest.approx(round(math.log(2), 6))
    assert summary["instructions"]["normalized_entropy"] == 1.0
    with pytest.raises(ValueError):
        dv.diversity_summary(x, x[:3], ["a"] * 4, ["en"] * 4, [1, 2, 3, 4])


# --------------------------------------------------------------------------------------------------
# Per-sample results


def make_clusters(sizes: list[int]) -> dv.ClusterResult:
    labels = np.repeat(np.arange(len(sizes)), sizes)
    n = labels.size
    return dv.ClusterResult(labels, np.zeros((len(sizes), 2), np.float32), len(sizes), dict(enumerate(sizes)), np.full(n, 0.25, np.float32))


def test_rare_cluster_rule():
    # 1,000 samples in 4 clusters (mean 250): the bound is min(0.2% of 1000, 0.2 * 250) = 2 samples
    assert dv.rare_clusters(make_clusters([500, 300, 199, 1])) == {3}
    assert dv.rare_clusters(make_clusters([500, 300, 198, 2])) == set()
    # fewer than 1,000 samples: never rare
    assert dv.rare_clusters(make_clusters([900, 98, 1])) == set()
    # 10,000 samples in 10 clusters (mean 1,000): min(20, 200) = 20
    assert dv.rare_clusters(make_clusters([2000] * 4 + [1981, 19] + [1000] * 4)) == {5}


def test_cluster_results_details_and_flag_reason():
    inst = make_clusters([500, 300, 199, 1])
    ans = make_clusters([999, 1])
    results = dv.cluster_results(inst, ans)
    assert len(results) == 1000
    first = results[0]
    assert first.name == "cluster"
    assert first.value == 0
    assert first.flags == []
    assert first.details == {
        "instruction_cluster": 0,
        "instruction_cluster_size": 500,
        "instruction_distance": 0.25,
        "answer_cluster": 0,
        "answer_cluster_size": 999,
        "answer_distance": 0.25,
    }
    last = results[-1]
    assert last.value == 3
    assert last.flags == [
        Flag(
            "rare_cluster",
            "instruction cluster 3 holds 1 of 1000 samples (0.10%; mean cluster size 250); "
            "answer cluster 1 holds 1 of 1000 samples (0.10%; mean cluster size 500)",
        )
    ]
    assert [r.flagged for r in results].count(True) == 1


def test_cluster_results_without_answers():
    results = dv.cluster_results(make_clusters([2, 1]))
    assert [r.value for r in results] == [0, 0, 1]
    assert set(results[2].details) == {"instruction_cluster", "instruction_cluster_size", "instruction_distance"}
    assert not any(r.flagged for r in results)
    with pytest.raises(ValueError):
        dv.cluster_results(make_clusters([2, 1]), make_clusters([2]))
