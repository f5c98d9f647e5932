"""Sample diversity (指令多样性 / 内容多样性): how widely the instructions and the answers spread.

Pure Python + NumPy + scikit-learn; no Django, no torch. Embeddings arrive as float32 arrays (n, d)
whose rows are L2-normalized, so cosine is their dot product.

Dataset level (`diversity_summary`, JSON-serializable):

- Clusters: k-means over the instruction embeddings and, separately, over the answer embeddings, with
  k from `choose_k`. Cluster sizes, their Shannon entropy (natural log) and the entropy normalized by
  ln k (1.0 = samples spread evenly over the k clusters, 0.0 = all in one).
- Vendi score of each set of embeddings with the cosine kernel: the "effective number of distinct
  samples" (1.0 for n copies of one vector, n for n mutually orthogonal ones).
- Distributions of task types and languages, and a histogram of answer lengths in tokens.

Per sample (`cluster_results`): the sample's instruction and answer cluster, and a "rare_cluster" flag
for samples in a cluster that holds very few of the samples (see `cluster_results` for the rule).

Everything is deterministic: same input and seed, same clusters and numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Flag, MetricResult

# k-means on more samples than this uses MiniBatchKMeans (batch_size, n_init below).
MINIBATCH_ABOVE = 20_000
MINIBATCH_BATCH_SIZE = 4096
MINIBATCH_N_INIT = 3
K_MIN, K_MAX = 2, 200

# Fixed bin edges of the length histogram, in tokens: [0,16), [16,32), ..., [1024,2048), [2048, inf).
LENGTH_BIN_EDGES: tuple[float, ...] = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, math.inf)

# rare_cluster rule (see cluster_results)
RARE_MIN_SAMPLES = 1000
RARE_MAX_SHARE = 0.002
RARE_MAX_MEAN_FRACTION = 0.2

_VENDI_CHUNK = 65_536  # rows per chunk when accumulating X^T X in float64


# --------------------------------------------------------------------------------------------------
# Clusters


def choose_k(n: int) -> int:
    """The number of clusters for n samples: k = floor(sqrt(n / 2) + 0.5) (the sqrt(n/2) rule of thumb,
    rounded half up), clipped to [2, 200], and never more than n.

    n = 0 -> 0, n = 1 -> 1, n = 2..12 -> 2, n = 100 -> 7, n = 1,000 -> 22, n = 52,000 -> 161,
    n >= 79,601 -> 200."""
    if n <= 0:
        return 0
    k = math.floor(math.sqrt(n / 2) + 0.5)
    return min(max(k, K_MIN), K_MAX, n)


@dataclass
class ClusterResult:
    """k-means clusters of n samples.

    labels: (n,) int64 cluster of each sample, numbered by size: cluster 0 is the largest (ties: the
    cluster whose first member comes first in input order). centroids: (k, d) float32, row c the centroid
    of cluster c (the mean of its members, not re-normalized). sizes: {cluster: members} for every
    cluster 0..k-1. distance_to_centroid: (n,) float32 Euclidean distance of each sample to its
    centroid (for unit vectors sqrt(2 - 2 cos) when the centroid were normalized; here the raw mean)."""

    labels: np.ndarray
    centroids: np.ndarray
    k: int
    sizes: dict[int, int] = field(default_factory=dict)
    distance_to_centroid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])


def _as_matrix(embeddings: Any, name: str = "embeddings") -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), got shape {x.shape}")
    return np.ascontiguousarray(x)


def _distinct_rows(x: np.ndarray) -> int:
    """The number of distinct rows (byte-wise) of a contiguous float32 matrix."""
    if x.shape[0] <= 1:
        return x.shape[0]
    rows = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
    return int(np.unique(rows).size)


def kmeans_clusters(embeddings: Any, k: int | None = None, seed: int = 0) -> ClusterResult:
    """k-means clusters of the rows of `embeddings` (n, d).

    k defaults to `choose_k(n)`; it is lowered to the number of distinct rows when there are fewer (so
    no cluster is empty). Up to MINIBATCH_ABOVE (20,000) samples: sklearn KMeans (k-means++, lloyd,
    n_init=3); above: MiniBatchKMeans (batch_size 4096, n_init=3, k-means++ seeding in float64 on each
    init sample). Both are seeded with `seed`, so the
    result is deterministic. n = 0 gives k = 0 and empty arrays; n = 1 gives one cluster."""
    x = _as_matrix(embeddings)
    n, d = x.shape
    if n == 0:
        return ClusterResult(np.zeros(0, dtype=np.int64), np.zeros((0, d), dtype=np.float32), 0, {}, np.zeros(0, dtype=np.float32))
    k = choose_k(n) if k is None else int(k)
    if k < 1:
        raise ValueError("k must be at least 1")
    k = min(k, n)
    if k > 1:
        k = min(k, _distinct_rows(x))
    if k == 1:
        labels = np.zeros(n, dtype=np.int64)
    else:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if n > MINIBATCH_ABOVE:
            model = MiniBatchKMeans(
                n_clusters=k, init=_kmeans_plusplus_f64, batch_size=MINIBATCH_BATCH_SIZE, n_init=MINIBATCH_N_INIT, random_state=seed
            )
        else:
            model = KMeans(n_clusters=k, n_init=3, random_state=seed)
        labels = model.fit_predict(x).astype(np.int64)
    return _cluster_result(x, labels, k)


def _kmeans_plusplus_f64(x: np.ndarray, n_clusters: int, random_state: Any) -> np.ndarray:
    """k-means++ seeding of MiniBatchKMeans on its init sample (3 x batch_size rows) in float64: sklearn's
    own seeding of float32 data upcasts small blocks one by one and took ~10x longer (50 s of a 56 s fit
    for 52,000 x 384, k = 161)."""
    from sklearn.cluster import kmeans_plusplus

    centers, _ = kmeans_plusplus(np.asarray(x, dtype=np.float64), n_clusters, random_state=random_state)
    return centers


def _cluster_result(x: np.ndarray, raw_labels: np.ndarray, k: int) -> ClusterResult:
    """Renumber clusters by size (largest first; ties by first appearance), recompute the centroids as
    the members' means, and the distance of every sample to its centroid."""
    n, d = x.shape
    counts = np.bincount(raw_labels, minlength=k)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, raw_labels, np.arange(n, dtype=np.int64))
    used = np.flatnonzero(counts)  # MiniBatchKMeans may leave a cluster empty: drop it
    order = used[np.lexsort((first[used], -counts[used]))]
    new_of = np.full(k, -1, dtype=np.int64)
    new_of[order] = np.arange(order.size)
    labels = new_of[raw_labels]
    k = int(order.size)
    sums = np.zeros((k, d), dtype=np.float64)
    _add_rows(sums, labels, x)
    sizes_arr = counts[order]
    centroids = (sums / sizes_arr[:, None]).astype(np.float32)
    distance = np.linalg.norm(x - centroids[labels], axis=1).astype(np.float32)
    sizes = {int(c): int(s) for c, s in enumerate(sizes_arr)}
    return ClusterResult(labels, centroids, k, sizes, distance)


def _add_rows(sums: np.ndarray, labels: np.ndarray, x: np.ndarray) -> None:
    """sums[c] += sum of the rows of x labelled c, via a sorted reduceat (much faster than np.add.at)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sums[sorted_labels[starts]] += np.add.reduceat(x[order].astype(np.float64), starts, axis=0)


# --------------------------------------------------------------------------------------------------
# Entropy, Vendi score, distributions


def entropy(labels: Iterable[Hashable]) -> float:
    """Shannon entropy (natural log) of the distribution of `labels`: 0.0 when all are equal (or there are
    none), ln m for m equally frequent values."""
    counts = np.fromiter(Counter(_key(v) for v in labels).values(), dtype=np.float64)
    return _entropy_of_counts(counts)


def normalized_entropy(labels: Iterable[Hashable], k: int | None = None) -> float:
    """`entropy` divided by ln k, in [0, 1]: 1.0 when the labels spread evenly over k values. k defaults
    to the number of distinct labels; pass the number of possible values (e.g. the k of k-means) to count
    empty ones as unevenness. 0.0 when k <= 1 (one value: no spread)."""
    counter = Counter(_key(v) for v in labels)
    k = len(counter) if k is None else int(k)
    if k < len(counter):
        raise ValueError(f"k={k} is less than the {len(counter)} distinct labels")
    if k <= 1:
        return 0.0
    h = _entropy_of_counts(np.fromiter(counter.values(), dtype=np.float64))
    return float(min(1.0, max(0.0, h / math.log(k))))


def _entropy_of_counts(counts: np.ndarray) -> float:
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(max(0.0, -(p * np.log(p)).sum()))


def _key(value: Any) -> Hashable:
    return value.item() if isinstance(value, np.generic) else value


def vendi_score(embeddings: Any) -> float:
    """Vendi score (Friedman & Dieng 2023) with the cosine kernel: exp of the Shannon entropy of the
    eigenvalues of K / n, K = X X^T (rows of X L2-normalized, so K_ii = 1).

    Computed exactly through the d x d matrix X^T X / n, which has the same non-zero eigenvalues as
    X X^T / n: O(n d^2) time and O(d^2) memory (X^T X is accumulated in float64, 65,536 rows at a time).
    The eigenvalues are clipped at 0 and divided by their sum (so rows that are not exactly unit length
    do not skew it). 1.0 for n copies of one vector, n for n mutually orthogonal vectors (n <= d);
    0.0 for no rows."""
    x = _as_matrix(embeddings)
    n, d = x.shape
    if n == 0:
        return 0.0
    gram = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, _VENDI_CHUNK):
        chunk = x[start : start + _VENDI_CHUNK].astype(np.float64)
        gram += chunk.T @ chunk
    return _vendi_of_eigenvalues(np.linalg.eigvalsh(gram / n))


def vendi_score_direct(embeddings: Any) -> float:
    """The Vendi score from the n x n kernel matrix, by definition (O(n^2 d + n^3)): a reference for tests
    and small sets; `vendi_score` gives the same number faster."""
    x = _as_matrix(embeddings).astype(np.float64)
    n = x.shape[0]
    if n == 0:
        return 0.0
    return _vendi_of_eigenvalues(np.linalg.eigvalsh(x @ x.T / n))


def _vendi_of_eigenvalues(eigenvalues: np.ndarray) -> float:
    lam = np.clip(eigenvalues, 0.0, None)
    total = lam.sum()
    if total <= 0:
        return 0.0
    lam = lam[lam > 0] / total
    return float(math.exp(-(lam * np.log(lam)).sum()))


def distribution(values: Iterable[Hashable]) -> dict[Hashable, int]:
    """{value: count}, most frequent first; equal counts in order of the values' string form."""
    counter = Counter(_key(v) for v in values)
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def _bin_label(lo: float, hi: float) -> str:
    return f"{int(lo)}+" if math.isinf(hi) else f"{int(lo)}-{int(hi) - 1}"


def length_histogram(lengths: Iterable[float], bins: Sequence[float] = LENGTH_BIN_EDGES) -> dict[str, int]:
    """Counts of lengths (tokens) per bin [edge_i, edge_i+1), labelled '0-15', '16-31', ..., '1024-2047',
    '2048+' for the default edges; every bin is present (0 when empty), in order. Lengths below the first
    edge are an error."""
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be at least two increasing edges")
    values = np.fromiter((float(v) for v in lengths), dtype=np.float64)
    if values.size and (np.isnan(values).any() or values.min() < edges[0]):
        raise ValueError(f"lengths must be numbers >= {edges[0]:g}")
    index = np.searchsorted(edges, values, side="right") - 1
    index = index[index < edges.size - 1]  # a length at or above a finite last edge falls outside
    counts = np.bincount(index, minlength=edges.size - 1)
    return {_bin_label(edges[i], edges[i + 1]): int(counts[i]) for i in range(edges.size - 1)}


# --------------------------------------------------------------------------------------------------
# Dataset summary


def cluster_summary(clusters: ClusterResult, embeddings: Any | None = None) -> dict[str, Any]:
    """k, cluster sizes (keys as strings, for JSON), entropy and normalized entropy (by ln k) of the
    cluster labels, and the Vendi score of `embeddings` when given."""
    counts = np.array([clusters.sizes[c] for c in range(clusters.k)], dtype=np.float64)
    h = _entropy_of_counts(counts)
    out: dict[str, Any] = {
        "k": clusters.k,
        "cluster_sizes": {str(c): s for c, s in clusters.sizes.items()},
        "entropy": round(h, 6),
        "normalized_entropy": round(min(1.0, h / math.log(clusters.k)), 6) if clusters.k > 1 else 0.0,
    }
    if embeddings is not None:
        out["vendi_score"] = round(vendi_score(embeddings), 6)
    return out


def _str_keys(d: dict[Hashable, int]) -> dict[str, int]:
    return {("" if k is None else str(k)): v for k, v in d.items()}


def diversity_summary(
    instruction_emb: Any,
    answer_emb: Any,
    task_types: Sequence[Hashable],
    languages: Sequence[Hashable],
    answer_lengths: Sequence[float],
    *,
    instruction_clusters: ClusterResult | None = None,
    answer_clusters: ClusterResult | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The diversity of a dataset as a JSON-serializable dict:

    {"n", "instructions": {"k", "cluster_sizes", "entropy", "normalized_entropy", "vendi_score"},
     "answers": {same}, "task_types": {type: count}, "languages": {language: count},
     "task_type_entropy", "task_type_normalized_entropy", "answer_length": {"median", "mean"},
     "answer_length_histogram": {"0-15": count, ...}}

    Pass the ClusterResults when they are computed already (e.g. for `cluster_results`); otherwise they
    are computed with `kmeans_clusters(..., seed=seed)`. Counts keyed by None appear under ""."""
    inst = _as_matrix(instruction_emb, "instruction_emb")
    ans = _as_matrix(answer_emb, "answer_emb")
    n = inst.shape[0]
    for name, seq in (("answer_emb", ans), ("task_types", task_types), ("languages", languages), ("answer_lengths", answer_lengths)):
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} rows, instruction_emb has {n}")
    instruction_clusters = instruction_clusters or kmeans_clusters(inst, seed=seed)
    answer_clusters = answer_clusters or kmeans_clusters(ans, seed=seed)
    return {
        "n": n,
        "instructions": cluster_summary(instruction_clusters, inst),
        "answers": cluster_summary(answer_clusters, ans),
        **distributions_summary(task_types, languages, answer_lengths),
    }


def distributions_summary(task_types: Sequence[Hashable], languages: Sequence[Hashable], answer_lengths: Sequence[float]) -> dict[str, Any]:
    """The parts of `diversity_summary` that need no embeddings: task type distribution and entropy,
    languages, answer length median, mean and histogram."""
    lengths = np.asarray(answer_lengths, dtype=np.float64)
    n = len(lengths)
    task_counts = distribution(task_types)
    return {
        "task_types": _str_keys(task_counts),
        "task_type_entropy": round(_entropy_of_counts(np.array(list(task_counts.values()), dtype=np.float64)), 6),
        "task_type_normalized_entropy": round(normalized_entropy(task_types), 6),
        "languages": _str_keys(distribution(languages)),
        "answer_length": {
            "median": float(np.median(lengths)) if n else None,
            "mean": round(float(lengths.mean()), 3) if n else None,
        },
        "answer_length_histogram": length_histogram(lengths),
    }


# --------------------------------------------------------------------------------------------------
# Per-sample results


def rare_clusters(
    clusters: ClusterResult,
    *,
    min_samples: int = RARE_MIN_SAMPLES,
    max_share: float = RARE_MAX_SHARE,
    max_mean_fraction: float = RARE_MAX_MEAN_FRACTION,
) -> set[int]:
    """The clusters that count as rare: only when n >= min_samples (1,000; below that a small cluster is
    chance), a cluster whose size is below BOTH max_share of n (0.2%) AND max_mean_fraction (a fifth) of
    the mean cluster size n / k. The second bound keeps the rule quiet where k is large relative to n;
    for n = 52,000 (k = 161, mean 323) a cluster is rare below 64.6 samples, for n = 1,000 (k = 22) below
    2 samples, for n = 1,000,000 (k = 200) below 1,000."""
    n = clusters.n
    if n < min_samples or clusters.k < 2:
        return set()
    limit = min(max_share * n, max_mean_fraction * n / clusters.k)
    return {c for c, size in clusters.sizes.items() if size < limit}


def _rare_reason(kind: str, cluster: int, size: int, n: int, k: int) -> str:
    return f"{kind} cluster {cluster} holds {size} of {n} samples ({100 * size / n:.2f}%; mean cluster size {n / k:.0f})"


def cluster_results(
    instruction_clusters: ClusterResult,
    answer_clusters: ClusterResult | None = None,
    *,
    min_samples: int = RARE_MIN_SAMPLES,
    max_share: float = RARE_MAX_SHARE,
    max_mean_fraction: float = RARE_MAX_MEAN_FRACTION,
) -> list[MetricResult]:
    """One MetricResult named "cluster" per sample, in input order: value is the instruction cluster;
    details hold "instruction_cluster", "instruction_cluster_size", "instruction_distance" (to the
    centroid) and the same for the answer ("answer_cluster", ...) when answer clusters are given.

    A sample whose instruction or answer cluster is rare (see `rare_clusters`) gets ONE flag
    "rare_cluster" whose reason names the rare cluster(s), e.g. "instruction cluster 17 holds 12 of
    52000 samples (0.02%; mean cluster size 323)". It marks topics (or kinds of answers) that few samples
    cover: candidates for more data, or odd samples to look at; it does not say the sample is bad."""
    n = instruction_clusters.n
    if answer_clusters is not None and answer_clusters.n != n:
        raise ValueError(f"answer clusters cover {answer_clusters.n} samples, instruction clusters {n}")
    kw = {"min_samples": min_samples, "max_share": max_share, "max_mean_fraction": max_mean_fraction}
    parts = [("instruction", instruction_clusters)]
    if answer_clusters is not None:
        parts.append(("answer", answer_clusters))
    prepared = []
    for kind, cl in parts:
        prepared.append(
            (kind, cl, rare_clusters(cl, **kw), cl.labels.tolist(), np.round(cl.distance_to_centroid.astype(np.float64), 4).tolist())
        )
    results = []
    for i in range(n):
        details: dict[str, Any] = {}
        reasons = []
        for kind, cl, rare, labels, distances in prepared:
            c = labels[i]
            details[f"{kind}_cluster"] = c
            details[f"{kind}_cluster_size"] = cl.sizes[c]
            details[f"{kind}_distance"] = distances[i]
            if c in rare:
                reasons.append(_rare_reason(kind, c, cl.sizes[c], n, cl.k))
        flags = [Flag("rare_cluster", "; ".join(reasons))] if reasons else []
        results.append(MetricResult("cluster", value=details["instruction_cluster"], flags=flags, details=details))
    return results
