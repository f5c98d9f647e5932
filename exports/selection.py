"""Balanced, seeded selection of export samples: pure functions over plain values and NumPy.

The pool is held as columns (`Pool`) sorted by sample id, and every random draw comes from a generator
seeded by (seed, purpose, stratum key), so the same candidates and spec give the same selection whatever
order the candidates arrive in, and one stratum's draw does not move when another stratum changes.
Allocation is exact (fractions, largest remainder, ties by stratum key). Random and quality selection are
vectorised; diversity methods cost O(n·k) NumPy work for k chosen."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from exports.spec import Balance, ExportSpec, Select, Split

NO_CLUSTER = np.iinfo(np.int64).min
REASONS = ("not_requested", "no_embedding", "too_similar", "shrunk", "over_target")
_PURPOSE = {"select": 1, "split": 2}
_BLOCK = 512


@dataclass(frozen=True, slots=True)
class Candidate:
    """One sample that passed the filters: its stratum key, a quality score (higher is better), its
    cluster and its row in the embedding matrix, each None when unknown."""

    id: int
    stratum: str
    quality: float | None = None
    cluster: int | None = None
    row: int | None = None


@dataclass(frozen=True, eq=False)
class Pool:
    """Candidates as columns, sorted by id. `codes` index `keys` (sorted distinct stratum keys); unknown
    quality is NaN, unknown cluster NO_CLUSTER, no embedding row -1."""

    ids: np.ndarray
    keys: tuple[str, ...]
    codes: np.ndarray
    quality: np.ndarray
    cluster: np.ndarray
    row: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def from_arrays(cls, ids: Any, strata: Sequence[str], *, quality: Any = None, cluster: Any = None, row: Any = None) -> Pool:
        """Build from parallel columns (what a database query returns), in any order."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        n = ids.shape[0]
        if len(strata) != n:
            raise ValueError(f"{len(strata)} strata for {n} ids")
        uniq, codes = np.unique(np.asarray(strata, dtype=str), return_inverse=True) if n else (np.array([], dtype=str), np.zeros(0, np.int64))
        q = np.full(n, np.nan) if quality is None else np.asarray(quality, dtype=np.float64).reshape(-1)
        c = np.full(n, NO_CLUSTER, np.int64) if cluster is None else np.asarray(cluster, dtype=np.int64).reshape(-1)
        r = np.full(n, -1, np.int64) if row is None else np.asarray(row, dtype=np.int64).reshape(-1)
        if not (q.shape[0] == c.shape[0] == r.shape[0] == n):
            raise ValueError("quality, cluster and row must have one value per id")
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if n > 1 and np.any(ids[1:] == ids[:-1]):
            dup = ids[1:][ids[1:] == ids[:-1]][0]
            raise ValueError(f"candidate id {int(dup)} appears more than once")
        return cls(ids=ids, keys=tuple(str(k) for k in uniq), codes=np.asarray(codes, np.int64).reshape(-1)[order],
                   quality=q[order], cluster=c[order], row=r[order])

    @classmethod
    def from_candidates(cls, candidates: Sequence[Candidate]) -> Pool:
        return cls.from_arrays(
            [c.id for c in candidates],
            [c.stratum for c in candidates],
            quality=[np.nan if c.quality is None else c.quality for c in candidates],
            cluster=[NO_CLUSTER if c.cluster is None else c.cluster for c in candidates],
            row=[-1 if c.row is None else c.row for c in candidates],
        )


@dataclass(frozen=True, eq=False)
class Selection:
    """The chosen samples: train and validation ids, each ascending; a report per stratum; how many
    candidates were left out, by reason; and, when `short` is "shrink" and a stratum is short, `shrink`:
    {"factor": the share of every target kept (0 to 1), "limited_by": the stratum that set it, "pool": its
    candidates (available), "target": what was asked of it}; None when nothing was shrunk."""

    train_ids: np.ndarray
    validation_ids: np.ndarray
    strata: dict[str, dict[str, Any]]
    dropped: dict[str, int]
    shrink: dict[str, Any] | None

    @property
    def ids(self) -> np.ndarray:
        """Every chosen id: train ones ascending, then validation ones ascending."""
        return np.concatenate([self.train_ids, self.validation_ids])

    def __len__(self) -> int:
        return int(self.train_ids.shape[0] + self.validation_ids.shape[0])

    def split_of(self, sample_id: int) -> str | None:
        """"train", "validation", or None when the id was not chosen."""
        for name, arr in (("train", self.train_ids), ("validation", self.validation_ids)):
            i = int(np.searchsorted(arr, sample_id))
            if i < arr.shape[0] and int(arr[i]) == sample_id:
                return name
        return None

    def report(self) -> dict[str, Any]:
        """JSON-ready summary for a preview or a manifest."""
        return {
            "chosen": len(self),
            "train": int(self.train_ids.shape[0]),
            "validation": int(self.validation_ids.shape[0]),
            "pool": sum(s["pool"] for s in self.strata.values()),
            "strata": self.strata,
            "dropped": self.dropped,
            "shrink": self.shrink,
        }


# --- allocation ---------------------------------------------------------------------------------


def largest_remainder(quotas: Mapping[str, Fraction], total: int) -> dict[str, int]:
    """Round exact quotas to whole numbers that sum to `total`: floors first, then one more to the
    largest remainders (ties by key)."""
    floors = {k: math.floor(q) for k, q in quotas.items()}
    left = total - sum(floors.values())
    if left < 0 or left > len(quotas):
        raise ValueError(f"quotas sum to {sum(quotas.values())}, cannot round to {total}")
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - floors[k]), k))[:left]:
        floors[k] += 1
    return floors


def water_fill(limits: Mapping[str, int], total: int) -> dict[str, int]:
    """Share `total` as evenly as possible with no key above its limit; odd units go to keys in key order."""
    out = {k: 0 for k in limits}
    active = sorted(limits, key=lambda k: (limits[k], k))
    remaining = total
    while active and remaining > 0:
        share = remaining // len(active)
        smallest = active[0]
        if limits[smallest] <= share:
            out[smallest] = limits[smallest]
            remaining -= limits[smallest]
            active.pop(0)
            continue
        for k in active:
            out[k] = share
        remaining -= share * len(active)
        for k in sorted(active)[:remaining]:
            out[k] += 1
        break
    return out


def _weight(w: float) -> Fraction:
    return Fraction(w) if isinstance(w, int) else Fraction(repr(float(w)))


def allocate_targets(pools: Mapping[str, int], balance: Balance, size: int | None) -> dict[str, int]:
    """The number of samples each stratum is asked for, before the short policy.

    none: everything, or `size` shared in proportion to the pools; counts: as given; ratios: weights
    scaled to `size`; cap: at most `cap` per stratum, and with `size` an even share under the cap.
    Strata named in counts/ratios but absent from `pools` must be in `pools` with 0."""
    keys = sorted(pools)
    if balance.mode == "counts":
        table = dict(balance.counts)
        return {k: int(table.get(k, 0)) for k in keys}
    if balance.mode == "ratios":
        if size is None:
            raise ValueError("mode 'ratios' needs a size")
        weights = {k: _weight(w) for k, w in balance.ratios}
        total_w = sum(weights.values())
        targets = largest_remainder({k: weights[k] * size / total_w for k in weights}, size)
        return {k: targets.get(k, 0) for k in keys}
    if balance.mode == "cap":
        capped = {k: min(pools[k], balance.cap or 0) for k in keys}
        if size is not None and sum(capped.values()) > size:
            return water_fill(capped, size)
        return capped
    total = sum(pools.values())
    if size is None or total == 0:
        return {k: pools[k] for k in keys}
    return largest_remainder({k: Fraction(pools[k] * size, total) for k in keys}, size)


def apply_short(pools: Mapping[str, int], targets: Mapping[str, int], short: str) -> tuple[dict[str, int], dict[str, Any] | None]:
    """What each stratum can actually give. take_all: min(pool, target). shrink: every target scaled by the
    same factor, the smallest pool/target, so the mixture holds; reports the factor (a share of the targets,
    to 6 significant digits, so a tiny factor never reads 0), the stratum that set it, its pool and its target.
    A requested stratum with an empty pool makes the factor 0, so every stratum is scaled to nothing (the
    services refuse such a spec)."""
    if short != "shrink":
        return {k: min(pools[k], t) for k, t in targets.items()}, None
    ratios = {k: Fraction(pools[k], t) for k, t in targets.items() if t > 0}
    if not ratios or min(ratios.values()) >= 1:
        return dict(targets), None
    limited_by = min(sorted(ratios), key=lambda k: ratios[k])
    factor = ratios[limited_by]
    quotas = {k: t * factor for k, t in targets.items()}
    effective = largest_remainder(quotas, math.floor(sum(quotas.values())))
    return effective, {"factor": float(f"{float(factor):.6g}"), "limited_by": limited_by, "pool": pools[limited_by],
                       "target": targets[limited_by]}


# --- choosing inside a stratum ---------------------------------------------------------------------


def _rng(seed: int, purpose: str, key: str) -> np.random.Generator:
    key_int = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _PURPOSE[purpose], key_int])))


def quality_order(ids: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Positions best first: highest quality, ties by lower id, unknown (NaN) last."""
    unknown = np.isnan(quality)
    return np.lexsort((ids, np.where(unknown, 0.0, -quality), unknown))


def _unit_rows(embeddings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings[rows])
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def k_center(x: np.ndarray, k: int, start: int) -> np.ndarray:
    """Greedy k-center over unit rows: start at `start`, then take the row farthest (cosine distance) from
    everything taken so far; ties go to the lower position. Returns positions in the order taken."""
    n = x.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, np.int64)
    taken = np.empty(k, np.int64)
    taken[0] = start
    nearest = 1.0 - x @ x[start]
    nearest[start] = -np.inf
    for i in range(1, k):
        j = int(np.argmax(nearest))
        taken[i] = j
        np.minimum(nearest, 1.0 - x @ x[j], out=nearest)
        nearest[j] = -np.inf
    return taken


def threshold_pick(x: np.ndarray, order: np.ndarray, k: int, threshold: float) -> tuple[np.ndarray, int]:
    """Score-first with a similarity threshold: walk `order` (best first) and take a row unless its cosine to
    a row already taken is >= threshold. Stops at k taken. Returns (positions taken, rows skipped on the way)."""
    taken: list[int] = []
    vecs = np.empty((min(max(k, 0), _BLOCK), x.shape[1]), dtype=x.dtype)
    skipped = 0
    pos = 0
    while len(taken) < k and pos < order.shape[0]:
        block = order[pos : pos + _BLOCK]
        pos += block.shape[0]
        v = x[block]
        before = len(taken)
        if vecs.shape[0] < min(k, before + block.shape[0]):
            vecs = np.concatenate([vecs[:before], np.empty((min(k, 2 * (before + block.shape[0])) - before, x.shape[1]), x.dtype)])
        too_close = (v @ vecs[:before].T).max(axis=1) >= threshold if before else np.zeros(block.shape[0], bool)
        stop = block.shape[0] - 1
        for j in np.flatnonzero(~too_close):
            if len(taken) > before and float((vecs[before : len(taken)] @ v[j]).max()) >= threshold:
                skipped += 1
                continue
            vecs[len(taken)] = v[j]
            taken.append(int(block[j]))
            if len(taken) == k:
                stop = int(j)
                break
        skipped += int(too_close[: stop + 1].sum())
    return np.asarray(taken, np.int64), skipped


def cluster_round_robin(cluster: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """An even draw across clusters: a random order inside each cluster and a random order of clusters, then
    round after round one from each cluster, so every cluster gives one before any gives a second. `cluster`
    must not be empty; samples without a cluster (NO_CLUSTER) count as one cluster."""
    n = cluster.shape[0]
    rank = np.empty(n, np.int64)
    rank[rng.permutation(n)] = np.arange(n)
    by_cluster = np.lexsort((rank, cluster))
    sorted_c = cluster[by_cluster]
    new = sorted_c[1:] != sorted_c[:-1]
    starts = np.r_[0, np.flatnonzero(new) + 1]
    group = np.r_[0, np.cumsum(new)]
    within = np.empty(n, np.int64)
    within[by_cluster] = np.arange(n) - starts[group]
    turn = rng.permutation(starts.shape[0])
    cluster_turn = np.empty(n, np.int64)
    cluster_turn[by_cluster] = turn[group]
    return np.lexsort((cluster_turn, within))[:k]


def _choose(pool: Pool, members: np.ndarray, k: int, key: str, select: Select, seed: int,
            embeddings: np.ndarray | None) -> tuple[np.ndarray, int, int]:
    """Positions (into the pool) chosen from one stratum; also (no_embedding, too_similar) counts."""
    if k <= 0 or members.shape[0] == 0:
        return np.zeros(0, np.int64), 0, 0
    ids = pool.ids[members]
    if select.method == "random":
        return members[_rng(seed, "select", key).permutation(members.shape[0])[:k]], 0, 0
    if select.method == "quality":
        return members[quality_order(ids, pool.quality[members])[:k]], 0, 0
    if select.method == "cluster":
        return members[cluster_round_robin(pool.cluster[members], k, _rng(seed, "select", key))], 0, 0
    if embeddings is None:
        raise ValueError("diversity selection needs the embedding matrix")
    rows = pool.row[members]
    has = rows >= 0
    no_embedding = int((~has).sum())
    members, rows, ids = members[has], rows[has], ids[has]
    if members.shape[0] == 0:
        return np.zeros(0, np.int64), no_embedding, 0
    x = _unit_rows(embeddings, rows)
    order = quality_order(ids, pool.quality[members])
    div = select.diversity
    if div is not None and div.method == "threshold":
        taken, skipped = threshold_pick(x, order, k, float(div.threshold or 1.0))
        return members[taken], no_embedding, skipped
    start = int(order[0]) if not np.isnan(pool.quality[members[order[0]]]) else 0
    return members[k_center(x, k, start)], no_embedding, 0


# --- the whole selection ------------------------------------------------------------------------


def _validation_total(n: int, validation: float | int) -> int:
    if isinstance(validation, int) and not isinstance(validation, bool):
        return min(validation, n)
    return math.floor(Fraction(repr(float(validation))) * n)


def _split(chosen: dict[str, np.ndarray], split: Split) -> dict[str, np.ndarray]:
    """Validation ids per stratum: the total shared by largest remainder, then a seeded draw in each stratum."""
    n = sum(a.shape[0] for a in chosen.values())
    total = _validation_total(n, split.validation)
    if n == 0 or total == 0:
        return {k: np.zeros(0, np.int64) for k in chosen}
    per = largest_remainder({k: Fraction(a.shape[0] * total, n) for k, a in chosen.items()}, total)
    return {k: np.sort(a[_rng(split.seed, "split", k).permutation(a.shape[0])[: per[k]]]) for k, a in chosen.items()}


def build_selection(candidates: Pool | Sequence[Candidate], *, balance: Balance, select: Select, size: int | None,
                    split: Split, seed: int, embeddings: np.ndarray | None = None) -> Selection:
    """Allocate targets per stratum, choose inside each stratum, split train/validation, and report."""
    pool = candidates if isinstance(candidates, Pool) else Pool.from_candidates(candidates)
    if select.method == "diversity" and embeddings is None:
        raise ValueError("diversity selection needs the embedding matrix")
    grouped = np.argsort(pool.codes, kind="stable")
    sizes = np.bincount(pool.codes, minlength=len(pool.keys)) if len(pool) else np.zeros(len(pool.keys), np.int64)
    bounds = np.r_[0, np.cumsum(sizes)]
    members = {k: grouped[bounds[i] : bounds[i + 1]] for i, k in enumerate(pool.keys)}
    requested = dict(balance.counts) if balance.mode == "counts" else dict(balance.ratios) if balance.mode == "ratios" else {}
    pools = {k: int(members[k].shape[0]) if k in members else 0 for k in sorted(set(members) | set(requested))}

    targets = allocate_targets(pools, balance, size)
    effective, shrink = apply_short(pools, targets, balance.short)

    chosen: dict[str, np.ndarray] = {}
    stats: dict[str, tuple[int, int]] = {}
    for key in pools:
        m = members.get(key, np.zeros(0, np.int64))
        picked, no_emb, skipped = _choose(pool, m, effective[key], key, select, seed, embeddings)
        chosen[key] = np.sort(pool.ids[picked])
        stats[key] = (no_emb, skipped)
    validation = _split(chosen, split)

    strata: dict[str, dict[str, Any]] = {}
    dropped = dict.fromkeys(REASONS, 0)
    for key in pools:
        n_pool, n_chosen, n_val = pools[key], int(chosen[key].shape[0]), int(validation[key].shape[0])
        no_emb, skipped = stats[key]
        left = n_pool - n_chosen
        why = dict.fromkeys(REASONS, 0)
        if balance.mode in ("counts", "ratios") and not requested.get(key):
            why["not_requested"] = left
        else:
            why["no_embedding"] = min(left, no_emb)
            why["too_similar"] = skipped
            rest = left - why["no_embedding"] - skipped
            why["shrunk"] = min(rest, max(min(n_pool, targets[key]) - effective[key], 0))
            why["over_target"] = rest - why["shrunk"]
        for reason, count in why.items():
            dropped[reason] += count
        strata[key] = {
            "pool": n_pool, "target": targets[key], "chosen": n_chosen, "train": n_chosen - n_val, "validation": n_val,
            "short": n_pool < targets[key] or n_chosen < effective[key],
            "dropped": {r: c for r, c in why.items() if c},
        }
    all_chosen = np.sort(np.concatenate([chosen[k] for k in pools])) if pools else np.zeros(0, np.int64)
    all_val = np.sort(np.concatenate([validation[k] for k in pools])) if pools else np.zeros(0, np.int64)
    train = np.setdiff1d(all_chosen, all_val, assume_unique=True)
    return Selection(train_ids=train.astype(np.int64), validation_ids=all_val.astype(np.int64), strata=strata,
                     dropped={r: c for r, c in dropped.items() if c}, shrink=shrink)


def select_for_spec(candidates: Pool | Sequence[Candidate], spec: ExportSpec, embeddings: np.ndarray | None = None) -> Selection:
    """`build_selection` with the parts of an export spec."""
    return build_selection(candidates, balance=spec.balance, select=spec.select, size=spec.size, split=spec.split,
                           seed=spec.seed, embeddings=embeddings)
