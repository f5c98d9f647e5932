"""Duplicate detection: exact, near (MinHash LSH over character n-grams) and semantic (embedding cosine).

Pure Python + NumPy; no Django, so it runs on a GPU box with only torch/transformers/numpy. The
near-duplicate search also needs datasketch, imported only there: exact and semantic duplicates work
without it.

A sample is an id (int or str, unique) and a text (the conversation: instruction and answer joined).

- Exact duplicates: equal after `normalize_text` (NFKC, whitespace collapsed; case kept), compared by a
  sha256 of the normalized text, like `content_hash`.
- Near-duplicates: the set of character n-grams ("shingles", default 5; character n-grams work for
  Chinese, which has no spaces) of the normalized, lower-cased text. Candidates come from MinHash LSH;
  every candidate pair is then VERIFIED with the exact Jaccard of the two shingle sets, so a group never
  rests on a MinHash estimate. The sets are compared as sorted arrays of 64-bit shingle fingerprints: two
  distinct n-grams share a fingerprint with probability ~2^-64, so this is the exact Jaccard of the
  shingle sets in practice (`shingles()` gives the sets as strings; the tests check both agree).
- Semantic duplicates: cosine of L2-normalized embeddings >= `semantic_threshold`, found block by block
  (a `block_size` x `block_size` tile of the similarity matrix at a time), so memory stays bounded.

Pairs above the threshold are joined with union-find, so a group is a connected component: every member
is above the threshold with at least one other member, not necessarily with all of them. Each group's
representative is its member that comes FIRST IN INPUT ORDER (the text alone cannot tell which answer is
better; callers who prefer another rule can order their input accordingly). Every other member records
the sample it matched: the representative when it is itself above the threshold with it, otherwise its
neighbour on a verified path to the representative; with the score of that pair.

Everything is deterministic: same input, same config -> same groups, representatives and matches.

Speed: the MinHash signatures are computed with NumPy for many documents at once (n-grams hashed once
per document, the `num_perm` permutations applied as vectorized `a * h + b mod 2^32` with a column-wise
minimum per document). They are bit-for-bit the values `datasketch.MinHash(scheme="affine32")` gives
with `update_batch` and a hash function returning our 32-bit n-gram hashes, and go into
`datasketch.MinHashLSH` as `LeanMinHash` objects.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .base import Flag, MetricResult
from .text import normalize_text

Id = Hashable  # an int or a str in practice

EXACT, NEAR, SEMANTIC = "exact", "near", "semantic"
RULES = {EXACT: "exact_duplicate", NEAR: "near_duplicate", SEMANTIC: "semantic_duplicate"}
_SCORE_NAMES = {EXACT: None, NEAR: "jaccard", SEMANTIC: "cosine"}
_MAX_LISTED = 50  # a representative's details list at most this many of its duplicates


@dataclass
class DuplicateConfig:
    """Settings for near and semantic duplicate detection.

    ngram: character n-gram size of the shingles. num_perm: MinHash permutations. threshold: Jaccard of
    the shingle sets at or above which two samples are near-duplicates. semantic_threshold: cosine at or
    above which two embeddings are semantic duplicates. seed: seeds the MinHash permutations (fixed, so
    results are deterministic). lsh_recall: the LSH bands and rows are chosen so that a pair exactly at
    `threshold` becomes a candidate with at least this probability (pairs above it more often); false
    candidates only cost a verification. lsh_params: (bands, rows) to override that choice.
    block_size: rows and columns of one tile of the cosine matrix in semantic search."""

    ngram: int = 5
    num_perm: int = 128
    threshold: float = 0.8
    semantic_threshold: float = 0.95
    seed: int = 1
    lsh_recall: float = 0.99
    lsh_params: tuple[int, int] | None = None
    block_size: int = 4096

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ValueError("ngram must be at least 1")
        if self.num_perm < 2:
            raise ValueError("num_perm must be at least 2")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if not -1.0 <= self.semantic_threshold <= 1.0:
            raise ValueError("semantic_threshold must be in [-1, 1]")
        if not 0.0 < self.lsh_recall < 1.0:
            raise ValueError("lsh_recall must be in (0, 1)")
        if self.block_size < 1:
            raise ValueError("block_size must be at least 1")

    def lsh_bands(self) -> tuple[int, int]:
        """(bands, rows) for the LSH index: the most rows per band (fewest false candidates) for which a
        pair at `threshold` is still a candidate with probability >= `lsh_recall`."""
        if self.lsh_params is not None:
            b, r = self.lsh_params
            if b < 2 or r < 1 or b * r > self.num_perm:
                raise ValueError("lsh_params must have bands >= 2, rows >= 1 and bands * rows <= num_perm")
            return b, r
        best = (self.num_perm, 1)
        for r in range(1, self.num_perm // 2 + 1):
            b = self.num_perm // r
            if 1.0 - (1.0 - self.threshold**r) ** b >= self.lsh_recall:
                best = (b, r)
        return best


@dataclass
class DuplicateGroup:
    """A group of duplicates: its representative (first in input order) and, for every other member in
    input order, (member id, id of the member it matched, score of that pair: Jaccard or cosine; 1.0
    for exact duplicates)."""

    representative: Id
    members: list[tuple[Id, Id, float]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return 1 + len(self.members)

    @property
    def ids(self) -> list[Id]:
        return [self.representative, *(m[0] for m in self.members)]


# --------------------------------------------------------------------------------------------------
# Text preparation and shingles


def prepare_text(text: str) -> str:
    """The text shingles are taken from: `normalize_text` (NFKC, whitespace collapsed), lower-cased."""
    return normalize_text(text).lower()


def shingles(text: str, n: int = 5) -> set[str]:
    """The set of character n-grams of the prepared text (see `prepare_text`); a non-empty text shorter
    than n is one shingle, an empty text has none."""
    t = prepare_text(text)
    if not t:
        return set()
    if len(t) < n:
        return {t}
    return {t[i : i + n] for i in range(len(t) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """Jaccard similarity of two sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


# n-gram hashing, vectorized: FNV-1a style over code points with a 64-bit odd multiplier, then the
# MurmurHash3 64-bit finalizer. Texts shorter than n are padded with a value that no code point has.
_PAD = 0x110000
_H_INIT = np.uint64(0xCBF29CE484222325)
_H_MUL = np.uint64(0x9E3779B97F4A7C15)
_F64 = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_F32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))
_CHUNK_CHARS = 1 << 16  # characters per batch of documents in the vectorized passes


def _fmix64(h: np.ndarray) -> np.ndarray:
    s, m1, m2 = _F64
    h ^= h >> s
    h *= m1
    h ^= h >> s
    h *= m2
    h ^= h >> s
    return h


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer, as datasketch's "affine32" scheme applies it to input hashes."""
    s1, m1, s2, m2 = _F32
    h ^= h >> s1
    h *= m1
    h ^= h >> s2
    h *= m2
    h ^= h >> s1
    return h


def _gram_hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the n-grams of each (prepared, non-empty) text, concatenated, and the offset
    where each text's n-grams start. Every text has at least one n-gram."""
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    pad = n - lens
    if (pad > 0).any():
        pad = np.maximum(pad, 0)
        cps = np.insert(cps, np.repeat(np.cumsum(lens), pad), np.uint32(_PAD))
        lens = lens + pad
    cps = cps.astype(np.uint64)
    m = len(cps) - n + 1
    h = np.full(m, _H_INIT, dtype=np.uint64)
    for k in range(n):
        h ^= cps[k : k + m]
        h *= _H_MUL
    counts = lens - (n - 1)
    offsets = np.cumsum(counts) - counts
    starts = np.cumsum(lens) - lens
    if len(texts) > 1:
        # keep only the n-grams that start and end inside one text
        h = h[np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - offsets, counts)]
    return _fmix64(h), offsets


def _batches(indices: Sequence[int], texts: Sequence[str]) -> Iterator[list[int]]:
    """Consecutive runs of `indices` holding about _CHUNK_CHARS characters of text each."""
    batch: list[int] = []
    chars = 0
    for i in indices:
        batch.append(i)
        chars += len(texts[i])
        if chars >= _CHUNK_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _permutations(config: DuplicateConfig) -> np.ndarray:
    """datasketch's affine32 permutation parameters (a, b) for (num_perm, seed): shape (2, num_perm)."""
    from datasketch import MinHash

    return MinHash(num_perm=config.num_perm, seed=config.seed, scheme="affine32").permutations


def minhash_input_hashes(text: str, n: int = 5) -> list[int]:
    """The 32-bit hash of each n-gram of the prepared text, as fed to MinHash: with these as the output of
    datasketch's hash function, `MinHash(scheme="affine32").update_batch` gives our signatures."""
    t = prepare_text(text)
    if not t:
        return []
    h, _ = _gram_hashes([t], n)
    return (h >> np.uint64(32)).astype(np.uint32).tolist()


def _signatures(texts: Sequence[str], n: int, perms: np.ndarray) -> np.ndarray:
    """MinHash signatures (len(texts), num_perm) uint32 of prepared, non-empty texts."""
    h64, offsets = _gram_hashes(texts, n)
    hv = _fmix32((h64 >> np.uint64(32)).astype(np.uint32))
    a, b = perms
    out = np.empty((len(texts), len(a)), dtype=np.uint32)
    tmp = np.empty_like(hv)
    for p in range(len(a)):
        np.multiply(hv, a[p], out=tmp)
        tmp += b[p]
        out[:, p] = np.minimum.reduceat(tmp, offsets)
    return out


def _fingerprints(texts: Sequence[str], n: int) -> list[np.ndarray]:
    """Each prepared, non-empty text's shingle set as a sorted array of unique 64-bit fingerprints."""
    h, offsets = _gram_hashes(texts, n)
    bounds = [*offsets.tolist(), len(h)]
    return [np.unique(h[bounds[k] : bounds[k + 1]]) for k in range(len(texts))]


def _sorted_jaccard(x: np.ndarray, y: np.ndarray) -> float:
    """Jaccard of two sets given as sorted arrays of unique values."""
    if x.size > y.size:
        x, y = y, x
    if not x.size:
        return 1.0 if not y.size else 0.0
    pos = np.searchsorted(y, x)
    np.minimum(pos, y.size - 1, out=pos)
    inter = int(np.count_nonzero(y.take(pos) == x))
    return inter / (x.size + y.size - inter)


# --------------------------------------------------------------------------------------------------
# Grouping helpers


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, x: int, y: int) -> bool:
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return False
        if rx < ry:  # the smaller index stays root: it is the representative
            self.parent[ry] = rx
        else:
            self.parent[rx] = ry
        return True


def _build_groups(ids: Sequence[Id], edges: list[tuple[int, int, float]], score_with) -> list[DuplicateGroup]:
    """Groups from the edges that joined components (a spanning forest). The representative is the
    smallest index; a member's match is the representative when `score_with(member, rep)` is not None
    (above the threshold), otherwise its parent on the tree path to the representative."""
    if not edges:
        return []
    adjacency: dict[int, list[tuple[int, float]]] = {}
    for i, j, s in edges:
        adjacency.setdefault(i, []).append((j, s))
        adjacency.setdefault(j, []).append((i, s))
    seen: set[int] = set()
    groups = []
    for rep in sorted(adjacency):
        if rep in seen:
            continue
        parent: dict[int, tuple[int, float]] = {}
        seen.add(rep)
        stack = [rep]
        while stack:  # depth-first over the tree; neighbours in index order, so the result is fixed
            x = stack.pop()
            for y, s in sorted(adjacency[x], reverse=True):
                if y not in seen:
                    seen.add(y)
                    parent[y] = (x, s)
                    stack.append(y)
        members = []
        for m in sorted(parent):
            p, s = parent[m]
            if p != rep:
                direct = score_with(m, rep)
                if direct is not None:
                    p, s = rep, direct
            members.append((ids[m], ids[p], float(s)))
        groups.append(DuplicateGroup(ids[rep], members))
    return groups


def _check_unique(ids: Sequence[Id]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[Id] = set()
    for sample_id in ids:
        if sample_id in seen:
            raise ValueError(f"sample ids must be unique; {sample_id!r} appears twice")
        seen.add(sample_id)


# --------------------------------------------------------------------------------------------------
# Exact duplicates


def exact_groups(items: Iterable[tuple[Id, str]]) -> list[list[Id]]:
    """Groups (size >= 2) of samples whose texts are equal after `normalize_text` (NFKC, whitespace
    collapsed; case kept), in order of first appearance; each group's first id is the representative."""
    by_key: dict[bytes, list[Id]] = {}
    seen: set[Id] = set()
    for sample_id, text in items:
        if sample_id in seen:
            raise ValueError(f"sample ids must be unique; {sample_id!r} appears twice")
        seen.add(sample_id)
        key = hashlib.sha256(normalize_text(text).encode("utf-8", "surrogatepass")).digest()
        by_key.setdefault(key, []).append(sample_id)
    return [group for group in by_key.values() if len(group) > 1]


def exact_duplicate_groups(items: Iterable[tuple[Id, str]]) -> list[DuplicateGroup]:
    """`exact_groups` as DuplicateGroups: every member matches the representative with score 1.0."""
    return [DuplicateGroup(g[0], [(x, g[0], 1.0) for x in g[1:]]) for g in exact_groups(items)]


# --------------------------------------------------------------------------------------------------
# Near-duplicates


@dataclass
class NearDuplicateStats:
    """What one near-duplicate run did, for logs and benchmarks."""

    samples: int = 0
    indexed: int = 0  # distinct non-empty prepared texts that went into the LSH index
    bands: int = 0
    rows: int = 0
    candidate_buckets: int = 0  # distinct LSH buckets holding two samples or more
    verified_pairs: int = 0  # candidate pairs whose Jaccard was computed (pairs already joined are skipped)
    failed_pairs: int = 0  # verified pairs below the threshold: the LSH false candidates
    groups: int = 0


def near_duplicate_groups(
    items: Iterable[tuple[Id, str]], config: DuplicateConfig | None = None, *, stats: NearDuplicateStats | None = None
) -> list[DuplicateGroup]:
    """Groups of near-duplicates: samples whose shingle sets have Jaccard >= config.threshold, found with
    MinHash LSH and verified with the exact Jaccard of the shingle sets, joined with union-find.

    Samples whose prepared texts are identical have Jaccard 1.0 and join directly (only the first enters
    the index); samples with empty text are left out (see `exact_groups`). Groups are ordered by their
    representative (the first member in input order); members in input order, each with the sample it
    matched and that pair's Jaccard. Pass a NearDuplicateStats to learn the counts of the run."""
    from datasketch import LeanMinHash, MinHashLSH

    config = config or DuplicateConfig()
    st = stats if stats is not None else NearDuplicateStats()
    ids: list[Id] = []
    texts: list[str] = []
    for sample_id, text in items:
        ids.append(sample_id)
        texts.append(prepare_text(text))
    _check_unique(ids)
    n = config.ngram
    st.samples = len(ids)

    uf = _UnionFind(len(ids))
    edges: list[tuple[int, int, float]] = []
    first_of: dict[str, int] = {}
    indexed: list[int] = []
    for i, t in enumerate(texts):
        if not t:
            continue
        j = first_of.setdefault(t, i)
        if j == i:
            indexed.append(i)
        else:
            uf.union(j, i)
            edges.append((j, i, 1.0))
    del first_of
    st.indexed = len(indexed)

    bands, rows = config.lsh_bands()
    st.bands, st.rows = bands, rows
    lsh = MinHashLSH(num_perm=config.num_perm, params=(bands, rows))
    perms = _permutations(config)
    with lsh.insertion_session() as session:
        for batch in _batches(indexed, texts):
            signatures = _signatures([texts[i] for i in batch], n, perms)
            for i, sig in zip(batch, signatures, strict=True):
                session.insert(i, LeanMinHash(seed=config.seed, hashvalues=sig, scheme="affine32"), check_duplication=False)

    # Candidates: the LSH buckets that hold two samples or more, each band's table read through the
    # storage API; a bucket that recurs in several bands is taken once; sorted, so the order is fixed.
    buckets: set[tuple[int, ...]] = set()
    for table in lsh.hashtables:
        for key, count in table.itemcounts().items():
            if count > 1:
                buckets.add(tuple(sorted(table.get(key))))
    del lsh
    st.candidate_buckets = len(buckets)

    fingerprints: dict[int, np.ndarray] = {}
    needed = sorted({i for bucket in buckets for i in bucket})
    for batch in _batches(needed, texts):
        fingerprints.update(zip(batch, _fingerprints([texts[i] for i in batch], n), strict=True))

    def fingerprint(i: int) -> np.ndarray:
        fp = fingerprints.get(i)
        if fp is None:
            fp = fingerprints[i] = _fingerprints([texts[i]], n)[0]
        return fp

    # Verification. Every candidate pair is either verified or skipped because its two samples are
    # already in one group (it could not change the groups), so the groups do not depend on the order;
    # a bucket is left as soon as all its samples are in one group, which keeps a big cluster of
    # near-duplicates linear instead of quadratic.
    threshold = config.threshold
    total = len(ids)
    failed: set[int] = set()  # pairs below the threshold, as i * total + j
    for bucket in sorted(buckets):
        groups_left = len({uf.find(i) for i in bucket})
        for a, i in enumerate(bucket):
            if groups_left == 1:
                break
            for j in bucket[a + 1 :]:
                if uf.find(i) == uf.find(j) or i * total + j in failed:
                    continue
                st.verified_pairs += 1
                fi, fj = fingerprints[i], fingerprints[j]
                # Jaccard <= smaller size / larger size: an exact test that spares the intersection
                small, large = sorted((fi.size, fj.size))
                score = _sorted_jaccard(fi, fj) if small >= threshold * large else 0.0
                if score >= threshold:
                    uf.union(i, j)
                    edges.append((i, j, score))
                    groups_left -= 1
                    if groups_left == 1:
                        break
                else:
                    failed.add(i * total + j)
    st.failed_pairs = len(failed)

    def score_with(m: int, rep: int) -> float | None:
        if texts[m] == texts[rep]:
            return 1.0
        score = _sorted_jaccard(fingerprint(m), fingerprint(rep))
        return score if score >= threshold else None

    groups = _build_groups(ids, edges, score_with)
    st.groups = len(groups)
    return groups


# --------------------------------------------------------------------------------------------------
# Semantic duplicates


def semantic_duplicate_groups(
    ids: Sequence[Id], embeddings: np.ndarray, config: DuplicateConfig | None = None, *, block_size: int | None = None
) -> list[DuplicateGroup]:
    """Groups of samples whose embeddings have cosine >= config.semantic_threshold.

    `embeddings` is (len(ids), d), rows L2-normalized (cosine is their dot product; they are not
    re-normalized here), cast to float32. The cosine matrix is computed one block_size x block_size tile
    at a time, upper triangle only, so memory stays bounded (block_size defaults to config.block_size).
    Groups are joined with union-find; representative first in input order."""
    config = config or DuplicateConfig()
    ids = list(ids)
    _check_unique(ids)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(ids):
        raise ValueError(f"embeddings must have shape (len(ids), d) = ({len(ids)}, d), got {emb.shape}")
    size = block_size or config.block_size
    threshold = np.float32(config.semantic_threshold)
    count = len(ids)
    uf = _UnionFind(count)
    edges: list[tuple[int, int, float]] = []
    for r0 in range(0, count, size):
        rows = emb[r0 : r0 + size]
        for c0 in range(r0, count, size):
            tile = rows @ emb[c0 : c0 + size].T
            ri, ci = np.nonzero(tile >= threshold)
            if c0 == r0:
                keep = ci > ri
                ri, ci = ri[keep], ci[keep]
            if not ri.size:
                continue
            scores = tile[ri, ci].tolist()
            for i, j, s in zip((ri + r0).tolist(), (ci + c0).tolist(), scores, strict=True):
                if uf.union(i, j):
                    edges.append((i, j, s))

    def score_with(m: int, rep: int) -> float | None:
        score = float(emb[m] @ emb[rep])
        return score if score >= threshold else None

    return _build_groups(ids, edges, score_with)


# --------------------------------------------------------------------------------------------------
# Per-sample results


def _shown(score: float) -> str:
    """Two decimals, rounded down, so a shown score is not above the real one (0.996 -> '0.99', not
    '1.00'); within 1e-6 of the next hundredth counts as on it (float32 0.97 is 0.9699999...)."""
    return f"{math.floor(score * 100 + 1e-4) / 100:.2f}"


def duplicate_reason(kind: str, matched: Id, score: float | None = None) -> str:
    """The reason of a duplicate flag, naming the other sample."""
    if kind == EXACT:
        return f"exact duplicate of sample {matched}"
    if kind == NEAR:
        return f"near-duplicate of sample {matched}, Jaccard {_shown(score)}"
    if kind == SEMANTIC:
        return f"semantically the same as sample {matched}, cosine {_shown(score)}"
    raise ValueError(f"unknown duplicate kind {kind!r}")


def group_results(
    groups: Iterable[DuplicateGroup | Sequence[Id]], kind: str, ids: Iterable[Id] | None = None
) -> dict[Id, MetricResult]:
    """One MetricResult named '<kind>_duplicate' per sample in a group (kind: 'exact', 'near' or
    'semantic'; exact groups may be plain lists of ids as `exact_groups` returns them).

    value is the size of the sample's group for every member. The representative has no flag; its
    details name the group and list its duplicates. Every other member has a Flag with rule
    'exact_duplicate' / 'near_duplicate' / 'semantic_duplicate' whose reason names the sample it matched
    (e.g. 'near-duplicate of sample demo-030, Jaccard 0.93'); details hold the representative, the
    matched sample and the score. With `ids`, samples in no group get a result too (value 1, no flag)."""
    if kind not in RULES:
        raise ValueError(f"unknown duplicate kind {kind!r}")
    name = RULES[kind]
    score_name = _SCORE_NAMES[kind]
    results: dict[Id, MetricResult] = {}
    for group in groups:
        if not isinstance(group, DuplicateGroup):
            group = DuplicateGroup(group[0], [(x, group[0], 1.0) for x in group[1:]])
        size = group.size
        others = [m[0] for m in group.members]
        results[group.representative] = MetricResult(
            name,
            value=size,
            details={
                "representative": group.representative,
                "group_size": size,
                "duplicates": others[:_MAX_LISTED],
            },
        )
        for member, matched, score in group.members:
            details = {"representative": group.representative, "group_size": size, "matched": matched}
            if score_name:
                details[score_name] = round(float(score), 4)
            results[member] = MetricResult(
                name,
                value=size,
                flags=[Flag(name, duplicate_reason(kind, matched, score))],
                details=details,
            )
    if ids is not None:
        for sample_id in ids:
            if sample_id not in results:
                results[sample_id] = MetricResult(name, value=1)
    return results


def duplicate_results(
    exact: Iterable[DuplicateGroup | Sequence[Id]] = (),
    near: Iterable[DuplicateGroup] = (),
    semantic: Iterable[DuplicateGroup] = (),
) -> dict[Id, list[MetricResult]]:
    """All duplicate results per sample: for each sample in any group, its exact, near and semantic
    results (see `group_results`), in that order. Samples in no group are absent."""
    out: dict[Id, list[MetricResult]] = {}
    for kind, groups in ((EXACT, exact), (NEAR, near), (SEMANTIC, semantic)):
        for sample_id, result in group_results(groups, kind).items():
            out.setdefault(sample_id, []).append(result)
    return out
