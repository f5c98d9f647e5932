"""Consistency (一致性) and label-error candidates (标签错误检查).

Pure Python + NumPy; no Django, no torch. Embeddings are float32 (n, d) with L2-normalized rows, so
cosine is their dot product. Similarities are computed in tiles of `block_size` x `block_size` (4096)
over the upper triangle only, so memory stays bounded (one 64 MiB float32 tile at a time) for any n.

- Internal consistency (`internal_consistency`): samples with near-identical instructions (cosine >=
  0.95, or the same normalized instruction text) form a group (connected components, like duplicate
  groups). Inside a group:
  * "format_deviation": the answer's format (short / list / code / prose, see `answer_format`) differs
    from the format that at least 60% of a group of >= 3 samples give;
  * "label_outside_set": for classification-style groups (>= 5 short answers, few distinct labels that
    repeat), a label that no other sample of the group gives;
  * "conflicting_answer": samples with the same instruction AND input text whose short answers differ.
- External consistency (`reference_similarity`): cosine of the answer to a reference answer (BELLE's
  std_answer, an expert answer); "far_from_reference" below a threshold.
- Label-error candidates (`label_error_candidates`): a short answer that disagrees with the majority
  answer of its near-identical neighbours (cosine of the inputs >= 0.9).

Short answers are "labels": at most 3 Latin words and at most 8 CJK characters on one line; they are
compared after `normalize_answer` (NFKC, lower-case, whitespace collapsed, surrounding punctuation and
quotes dropped: "Positive." == "positive"). Longer answers are never compared for equality.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Flag, MetricResult
from .text import normalize_text

Id = Hashable

BLOCK_SIZE = 4096
_DENSE_HITS_PER_ROW = 8  # a tile with more hits than this x k per row takes the sorted path
GROUP_THRESHOLD = 0.95
# With all-MiniLM-L6-v2, answers that agree with the reference in other words scored 0.75-0.97 against it,
# off-topic answers and refusals 0.0-0.52. Cosine cannot see a wrong fact in an on-topic answer ("Sydney"
# for "Canberra" scores 0.88): the flag means "about something else", not "wrong".
REFERENCE_THRESHOLD = 0.5
MAX_LISTED = 5  # ids named in a reason

_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_WORD = re.compile(rf"[^\W{_CJK}]+")
_EDGE_PUNCT = " \t.。!！?？,，;；:：、\"'“”‘’「」『』()（）[]【】<>《》`*_"
_LIST_LINE = re.compile(r"^\s*(?:[-*+•·●▪]\s+|\d{1,3}[.)、]\s*|[(（]\d{1,3}[)）]|[一二三四五六七八九十]{1,3}、)", re.M)
_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.M)

SHORT, LIST, CODE, PROSE = "short", "list", "code", "prose"
_FORMAT_NAMES = {SHORT: "a short answer", LIST: "a list", CODE: "code", PROSE: "prose"}


# --------------------------------------------------------------------------------------------------
# Answers as labels


def normalize_answer(text: str) -> str:
    """A short answer as a comparable label: NFKC, whitespace collapsed, lower-case, surrounding
    punctuation, quotes and brackets dropped ('"Positive."' -> 'positive')."""
    return normalize_text(text).lower().strip(_EDGE_PUNCT)


def is_short_answer(text: str, *, max_words: int = 3, max_cjk: int = 8) -> bool:
    """A label-like answer: non-empty, one line, at most max_words Latin words/numbers and at most max_cjk
    CJK characters."""
    t = text.strip()
    if not t or "\n" in t:
        return False
    return len(_WORD.findall(t)) <= max_words and len(_CJK_CHAR.findall(t)) <= max_cjk and bool(normalize_answer(t))


def answer_format(text: str) -> str:
    """'short' (see `is_short_answer`), 'code' (a fenced code block), 'list' (two or more list lines:
    "- ", "* ", "1.", "1)", "(1)", "一、"), else 'prose'."""
    if is_short_answer(text):
        return SHORT
    if _FENCE.search(text):
        return CODE
    if len(_LIST_LINE.findall(text)) >= 2:
        return LIST
    return PROSE


def _shown_answer(text: str, limit: int = 40) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def _ids_text(ids: Sequence[Id], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"


def _samples(ids: Sequence[Id]) -> str:
    return f"sample{'s' if len(ids) > 1 else ''} {_ids_text(ids)}"


# --------------------------------------------------------------------------------------------------
# Blocked similarity


def _as_matrix(embeddings: Any, n: int | None, name: str) -> np.ndarray:
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or (n is not None and x.shape[0] != n):
        raise ValueError(f"{name} must have shape ({n if n is not None else 'n'}, d), got {x.shape}")
    return x


def _tiles(x: np.ndarray, block_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(row offset, column offset, tile of cosines) over the upper triangle (column block >= row block)."""
    n = x.shape[0]
    for r0 in range(0, n, block_size):
        rows = x[r0 : r0 + block_size]
        for c0 in range(r0, n, block_size):
            yield r0, c0, rows @ x[c0 : c0 + block_size].T


def similar_pairs(embeddings: Any, threshold: float, *, block_size: int = BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j with cosine >= threshold: (i, j, cosine) as arrays, sorted by (i, j)."""
    x = _as_matrix(embeddings, None, "embeddings")
    t = np.float32(threshold)
    out_i, out_j, out_s = [], [], []
    for r0, c0, tile in _tiles(x, block_size):
        if r0 == c0:
            np.fill_diagonal(tile, -np.inf)
        rows = np.flatnonzero(tile.max(axis=1) >= t)  # most tiles have no hit: skip them cheaply
        if not rows.size:
            continue
        sub = tile[rows]
        ri, ci = np.nonzero(sub >= t)
        ri = rows[ri]
        if r0 == c0:
            keep = ci > ri
            ri, ci = ri[keep], ci[keep]
        if ri.size:
            out_i.append(ri + r0)
            out_j.append(ci + c0)
            out_s.append(tile[ri, ci])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, s = np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64), np.concatenate(out_s)
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected component of each node (labelled by its smallest member) for edges (i, j)."""
    parent = list(range(n))

    def find(a: int) -> int:
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(a) for a in range(n)], dtype=np.int64)


def _check_ids(ids: Sequence[Id]) -> None:
    if len(set(ids)) != len(ids):
        seen: set[Id] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise ValueError(f"sample ids must be unique; {dup!r} appears twice")


# --------------------------------------------------------------------------------------------------
# Internal consistency


@dataclass(frozen=True)
class ConsistencyConfig:
    """threshold: cosine of instruction embeddings at or above which two instructions are the same.
    min_group: group size for format checks. format_majority: share of the group a format must have to
    be the group's format. min_labels: short answers a group needs to have a label set. label_repeat:
    a label is in the set when at least this many samples give it. max_label_ratio: at most this many
    distinct labels per short answer (1/3: labels repeat; names, numbers and translations do not).
    label_coverage: the set must cover at least this share of the short answers."""

    threshold: float = GROUP_THRESHOLD
    min_group: int = 3
    format_majority: float = 0.6
    min_labels: int = 5
    label_repeat: int = 2
    max_label_ratio: float = 1 / 3
    label_coverage: float = 0.8
    block_size: int = BLOCK_SIZE


def instruction_groups(
    instructions: Sequence[str], instruction_emb: Any | None = None, *, threshold: float = GROUP_THRESHOLD, block_size: int = BLOCK_SIZE
) -> np.ndarray:
    """Group of each sample (the index of the group's first sample): samples joined when their
    instruction embeddings have cosine >= threshold or their normalized instruction texts are equal;
    groups are connected components. A sample alone is its own group."""
    n = len(instructions)
    first_of: dict[str, int] = {}
    ei, ej = [], []
    for k, text in enumerate(instructions):
        f = first_of.setdefault(normalize_text(text), k)
        if f != k:
            ei.append(f)
            ej.append(k)
    i = np.array(ei, dtype=np.int64)
    j = np.array(ej, dtype=np.int64)
    if instruction_emb is not None:
        x = _as_matrix(instruction_emb, n, "instruction_emb")
        pi, pj, _ = similar_pairs(x, threshold, block_size=block_size)
        i, j = np.concatenate([i, pi]), np.concatenate([j, pj])
    return _components(n, i, j)


def internal_consistency(
    ids: Sequence[Id],
    instructions: Sequence[str],
    answers: Sequence[str],
    instruction_emb: Any | None = None,
    *,
    inputs: Sequence[str] | None = None,
    config: ConsistencyConfig | None = None,
) -> list[MetricResult]:
    """One MetricResult named "internal_consistency" per sample, in order.

    instructions: the task part of each prompt (Alpaca's instruction; the whole user turn when there is
    no separate input); inputs: the input/content part, or None. Groups come from `instruction_groups`
    over the instructions (and their embeddings when given). For identical-text conflicts the key is the
    normalized instruction AND input.

    value: None for a sample alone in its group; else the share of the other group members whose answer
    has the same format. details: group (id of the group's first sample), group_size, format, label (the
    normalized short answer or None). Flags (reasons name the other samples by id):
    "format_deviation": "answer is a list where 4 of 5 samples with a near-identical instruction give a
    short answer (samples 3, 8, 12, 20)"; "label_outside_set": "label 'mixed' is outside the labels of
    14 samples with a near-identical instruction: 'positive' (8), 'negative' (5)"; "conflicting_answer":
    "answer 'positive' conflicts with 'negative' given by samples 12, 40 for the same instruction"."""
    cfg = config or ConsistencyConfig()
    ids = list(ids)
    n = len(ids)
    _check_ids(ids)
    if len(instructions) != n or len(answers) != n or (inputs is not None and len(inputs) != n):
        raise ValueError("ids, instructions, answers (and inputs) must have the same length")
    groups = instruction_groups(instructions, instruction_emb, threshold=cfg.threshold, block_size=cfg.block_size)
    formats = [answer_format(a) for a in answers]
    labels = [normalize_answer(a) if f == SHORT else None for a, f in zip(answers, formats, strict=True)]
    flags: list[list[Flag]] = [[] for _ in range(n)]
    values: list[float | None] = [None] * n

    members_of: dict[int, list[int]] = {}
    for k, g in enumerate(groups.tolist()):
        members_of.setdefault(g, []).append(k)

    for members in members_of.values():
        size = len(members)
        if size < 2:
            continue
        fcount = Counter(formats[k] for k in members)
        for k in members:
            values[k] = round((fcount[formats[k]] - 1) / (size - 1), 4)
        # format deviation
        if size >= cfg.min_group:
            top, top_n = max(fcount.items(), key=lambda kv: (kv[1], kv[0] == SHORT))
            if top_n / size >= cfg.format_majority and top_n < size:
                majority_ids = [ids[k] for k in members if formats[k] == top]
                for k in members:
                    if formats[k] != top:
                        flags[k].append(
                            Flag(
                                "format_deviation",
                                f"answer is {_FORMAT_NAMES[formats[k]]} where {top_n} of {size} samples with a near-identical "
                                f"instruction give {_FORMAT_NAMES[top]} ({_samples(majority_ids)})",
                            )
                        )
        # label set of classification-style groups
        short = [k for k in members if labels[k]]
        if len(short) >= cfg.min_labels:
            lcount = Counter(labels[k] for k in short)
            label_set = {lab: c for lab, c in lcount.items() if c >= cfg.label_repeat}
            covered = sum(label_set.values())
            if label_set and len(lcount) <= cfg.max_label_ratio * len(short) and covered >= cfg.label_coverage * len(short):
                listed = ", ".join(f"'{lab}' ({c})" for lab, c in sorted(label_set.items(), key=lambda kv: (-kv[1], kv[0])))
                for k in short:
                    if labels[k] not in label_set:
                        flags[k].append(
                            Flag(
                                "label_outside_set",
                                f"label '{labels[k]}' is outside the labels of {len(short)} samples with a near-identical instruction: {listed}",
                            )
                        )

    # conflicts: same instruction (and input) text, different short answers
    by_text: dict[tuple[str, str], list[int]] = {}
    for k in range(n):
        if labels[k]:
            key = (normalize_text(instructions[k]), normalize_text(inputs[k]) if inputs is not None else "")
            by_text.setdefault(key, []).append(k)
    for members in by_text.values():
        by_label: dict[str, list[Id]] = {}
        for m in members:
            by_label.setdefault(labels[m], []).append(ids[m])
        if len(by_label) < 2:
            continue
        ordered = sorted(by_label.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        reasons = {
            own: f"answer '{own}' conflicts with "
            + " and ".join(f"'{lab}' given by {_samples(who)}" for lab, who in ordered if lab != own)
            + " for the same instruction"
            for own in by_label
        }
        for k in members:
            flags[k].append(Flag("conflicting_answer", reasons[labels[k]]))

    results = []
    for k in range(n):
        g = int(groups[k])
        size = len(members_of[g])
        details = {"group": ids[g], "group_size": size, "format": formats[k], "label": labels[k]}
        results.append(MetricResult("internal_consistency", value=values[k], flags=flags[k], details=details))
    return results


# --------------------------------------------------------------------------------------------------
# External consistency


def _floor2(x: float) -> str:
    return f"{math.floor(x * 100 + 1e-9) / 100:.2f}"


def reference_similarity(answer_emb: Any, reference_emb: Any | None, *, threshold: float = REFERENCE_THRESHOLD) -> MetricResult:
    """Cosine of an answer's embedding (d,) to its reference answer's (d,), both L2-normalized. value None
    (no flag) when there is no reference. Flag "far_from_reference" when cosine < threshold: "answer is
    far from the reference answer: cosine 0.31 < 0.50" (the cosine shown rounded down)."""
    if reference_emb is None:
        return MetricResult("reference_similarity", value=None)
    a = np.asarray(answer_emb, dtype=np.float32).ravel()
    r = np.asarray(reference_emb, dtype=np.float32).ravel()
    if a.shape != r.shape:
        raise ValueError(f"answer and reference embeddings differ in shape: {a.shape} vs {r.shape}")
    cos = float(a @ r)
    flags = []
    if cos < threshold:
        flags.append(Flag("far_from_reference", f"answer is far from the reference answer: cosine {_floor2(cos)} < {threshold:.2f}"))
    return MetricResult("reference_similarity", value=round(cos, 4), flags=flags, details={"threshold": threshold})


# --------------------------------------------------------------------------------------------------
# Label-error candidates


def _top_neighbours(x: np.ndarray, k: int, threshold: float, block_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each row, up to k other rows with cosine >= threshold, most similar first (ties: lower index):
    (indices per row, cosines per row). Tiles over the upper triangle; per tile at most k candidates per
    row and per column are kept, so memory stays bounded even when many rows are identical."""
    n = x.shape[0]
    t = np.float32(threshold)
    cand_i: list[np.ndarray] = []
    cand_j: list[np.ndarray] = []
    cand_s: list[np.ndarray] = []

    def keep(rows_idx: np.ndarray, cols_idx: np.ndarray, sims: np.ndarray) -> None:
        # at most k per row of this tile (best first)
        if rows_idx.size == 0:
            return
        order = np.lexsort((cols_idx, -sims, rows_idx))
        rows_idx, cols_idx, sims = rows_idx[order], cols_idx[order], sims[order]
        starts = np.r_[0, np.flatnonzero(np.diff(rows_idx)) + 1]
        rank = np.arange(rows_idx.size) - np.repeat(starts, np.diff(np.r_[starts, rows_idx.size]))
        m = rank < k
        cand_i.append(rows_idx[m])
        cand_j.append(cols_idx[m])
        cand_s.append(sims[m])

    for r0, c0, tile in _tiles(x, block_size):
        if r0 == c0:
            np.fill_diagonal(tile, -np.inf)  # a row is not its own neighbour
        row_max = tile.max(axis=1)
        if row_max.max() < t:  # most tiles have no hit: skip them cheaply
            continue
        directions = [(tile, r0, c0, row_max)]
        if r0 != c0:
            directions.append((tile.T, c0, r0, tile.max(axis=0)))
        for view, a0, b0, best in directions:
            rows = np.flatnonzero(best >= t)
            sub = view[rows]
            hits = int(np.count_nonzero(sub >= t))
            if hits > _DENSE_HITS_PER_ROW * k * rows.size:
                # many near-identical rows: take each row's k best by a stable sort instead of listing all hits
                top = np.argsort(-sub, axis=1, kind="stable")[:, :k]
                sims = np.take_along_axis(sub, top, axis=1)
                ri, pos = np.nonzero(sims >= t)
                keep(rows[ri] + a0, top[ri, pos] + b0, sims[ri, pos])
            else:
                ri, ci = np.nonzero(sub >= t)
                keep(rows[ri] + a0, ci + b0, sub[ri, ci])

    nbr_idx: list[np.ndarray] = [np.zeros(0, np.int64)] * n
    nbr_sim: list[np.ndarray] = [np.zeros(0, np.float32)] * n
    if not cand_i:
        return nbr_idx, nbr_sim
    i = np.concatenate(cand_i).astype(np.int64)
    j = np.concatenate(cand_j).astype(np.int64)
    s = np.concatenate(cand_s)
    order = np.lexsort((j, -s, i))
    i, j, s = i[order], j[order], s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(i)) + 1]
    ends = np.r_[starts[1:], i.size]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        row = int(i[a])
        nbr_idx[row] = j[a : min(b, a + k)]
        nbr_sim[row] = s[a : min(b, a + k)]
    return nbr_idx, nbr_sim


def label_error_candidates(
    ids: Sequence[Id],
    input_emb: Any,
    answers: Sequence[str],
    k: int = 10,
    input_threshold: float = 0.9,
    *,
    min_neighbours: int = 3,
    majority_share: float = 0.6,
    block_size: int = BLOCK_SIZE,
) -> list[MetricResult]:
    """One MetricResult named "label_error" per sample, in order.

    Only samples with short answers (labels, see `is_short_answer`) take part, as samples and as
    neighbours. For each, its up to k nearest neighbours whose inputs have cosine >= input_threshold
    (input_emb: (n, d), L2-normalized rows). With at least min_neighbours such neighbours, when the most
    common label among them has a share >= majority_share and differs from the sample's label, flag
    "label_error_candidate": "answer 'B' disagrees with 'A' given by 4 of 5 near-identical samples (ids
    3, 8, 9, 12)". value: the share of the neighbours that agree with the sample's label (None when the
    answer is not short or there are too few neighbours). details: neighbours (their ids), majority
    label and share."""
    ids = list(ids)
    n = len(ids)
    _check_ids(ids)
    if len(answers) != n:
        raise ValueError(f"{len(answers)} answers for {n} ids")
    x = _as_matrix(input_emb, n, "input_emb")
    if k < 1:
        raise ValueError("k must be at least 1")
    short = [m for m in range(n) if is_short_answer(answers[m])]
    labels = {m: normalize_answer(answers[m]) for m in short}
    results = [MetricResult("label_error", value=None) for _ in range(n)]
    if len(short) < 2:
        return results
    sub = np.asarray(short, dtype=np.int64)
    nbr_idx, nbr_sim = _top_neighbours(x[sub], k, input_threshold, block_size)
    for local, m in enumerate(short):
        nbrs = [short[int(q)] for q in nbr_idx[local]]
        if len(nbrs) < min_neighbours:
            continue
        own = labels[m]
        counts = Counter(labels[q] for q in nbrs)
        # the most common label; ties broken by the nearest neighbour's label
        first_rank = {}
        for rank, q in enumerate(nbrs):
            first_rank.setdefault(labels[q], rank)
        top, top_n = min(counts.items(), key=lambda kv: (-kv[1], first_rank[kv[0]]))
        share = top_n / len(nbrs)
        agree = counts.get(own, 0) / len(nbrs)
        flags = []
        if top != own and share >= majority_share:
            who = [ids[q] for q in nbrs if labels[q] == top]
            shown_top = next(answers[q] for q in nbrs if labels[q] == top)
            flags.append(
                Flag(
                    "label_error_candidate",
                    f"answer '{_shown_answer(answers[m])}' disagrees with '{_shown_answer(shown_top)}' given by {top_n} of "
                    f"{len(nbrs)} near-identical samples (ids {_ids_text(who)})",
                )
            )
        details = {
            "neighbours": [ids[q] for q in nbrs],
            "similarities": [round(float(v), 4) for v in nbr_sim[local]],
            "label": own,
            "majority_label": top,
            "majority_share": round(share, 4),
        }
        results[m] = MetricResult("label_error", value=round(agree, 4), flags=flags, details=details)
    return results
