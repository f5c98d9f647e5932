"""Conciseness and clarity (简洁性与清晰度): is the answer as long as it needs to be, and easy to read?

Pure Python + NumPy; no Django, no torch.

Length is judged against similar instructions: the caller clusters the instruction embeddings
(`diversity.kmeans_clusters`) and passes each sample's cluster; an answer is compared with the median
answer length of its cluster (the sample itself included). Lengths are in tokens as `count_tokens`
counts them: one per CJK character, one per run of other letters and digits (a Latin word, a number).

Per sample (`conciseness_results` / `conciseness`):

- ratio = tokens / cluster median (None when the cluster has fewer than `min_cluster_size` samples or
  its median is 0: no reliable reference).
- Flag "verbose" when ratio > verbose_ratio (3.0) and the answer has at least verbose_min_tokens (200):
  "answer is 4.2x the median length of similar instructions (cluster 7, median 120 tokens)".
- Flag "terse" when ratio < terse_ratio (0.2) and the cluster median is at least terse_min_median (50):
  "answer is 0.08x the median length of similar instructions (cluster 7, median 120 tokens): 10 tokens".
- Clarity sub-score in [0, 1] from structure (`clarity`): long answers without paragraphs, lists or
  headings, very long sentences, repeated sentences. Flag "low_clarity" when it is below low_clarity
  (0.6), reason listing the issues; flag "repetitive" when repeated sentences make up a large share.
- value = length score x clarity, in [0, 1]: the length score is 1.0 for ratio in [terse_ratio, 1.5],
  1.5 / ratio above (3x -> 0.5, 6x -> 0.25), ratio / terse_ratio below (only when the terse rule
  applies), 1.0 without a ratio.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Flag, MetricResult
from .completeness import split_sentences
from .text import normalize_text

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*")
_ASCII_TOKEN = re.compile(r"\w+(?:'\w+)*")


def count_tokens(text: str) -> int:
    """Tokens of a text: one per CJK (Chinese, Japanese kana, Korean) character, one per run of other
    letters/digits/underscores (a Latin word or a number; an apostrophe inside a word joins it: "don't"
    is one). Punctuation and spaces do not count. "Hello, world 42" -> 3, "机器学习 is fun" -> 6."""
    return len((_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text))


@dataclass(frozen=True)
class ConcisenessConfig:
    """verbose_ratio / verbose_min_tokens: "verbose" above this ratio to the cluster median, for answers
    of at least this many tokens. terse_ratio / terse_min_median: "terse" below this ratio, when the
    cluster median is at least this many tokens. min_cluster_size: clusters smaller than this give no
    ratio. long_sentence_tokens: a sentence longer than this is hard to read. structure_min_tokens: an
    answer this long needs paragraphs, a list or headings. headings_min_tokens: an answer this long in
    plain paragraphs (no list, no heading) loses a little clarity. low_clarity: "low_clarity" below this.
    repetitive_share: "repetitive" when repeated sentences are at least this share of the sentences."""

    verbose_ratio: float = 3.0
    verbose_min_tokens: int = 200
    terse_ratio: float = 0.2
    terse_min_median: float = 50
    min_cluster_size: int = 5
    long_sentence_tokens: int = 60
    structure_min_tokens: int = 250
    headings_min_tokens: int = 800
    low_clarity: float = 0.6
    repetitive_share: float = 0.2


# --------------------------------------------------------------------------------------------------
# Clarity

_LIST_LINE = re.compile(r"^\s*(?:[-*+•·●▪]\s+|\d{1,3}[.)、]\s*|[(（]\d{1,3}[)）]|[一二三四五六七八九十]{1,3}、)", re.M)
_HEADING = re.compile(r"^\s*(?:#{1,6}\s+\S|\*\*[^*\n]{1,80}\*\*\s*:?\s*$|[^\n]{1,40}[:：]\s*$)", re.M)
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.S | re.M)
# A line of markup (HTML/XML, raw or escaped as &lt;...&gt;): code, not prose, even outside a fence.
_MARKUP_LINE = re.compile(r"^[ \t]*(?:<|&lt;)/?[^\s<>&][^\n]*?(?:>|&gt;)[ \t]*$", re.M)
# A stanza's label line: "Chorus:", "[Chorus]", "合唱：", "副歌：", "(Refrain)".
_LABEL_LINE = re.compile(r"^\s*(?:[\[(（【][^\n]{1,20}[\])）】]|[^\n]{1,20}[:：])\s*$")
_MIN_REPEAT_CHARS = 10  # shorter sentences ("Yes.", "例如：") may repeat without being redundant


@dataclass
class Clarity:
    """score in [0, 1]; issues: readable strings, one per problem found; repeated: sentences that repeat
    an earlier one; sentences: sentences counted (code blocks left out)."""

    score: float
    issues: list[str]
    repeated: int = 0
    sentences: int = 0


def clarity(answer: str, config: ConcisenessConfig | None = None, *, tokens: int | None = None) -> Clarity:
    """Clarity of an answer from its structure; 1.0 minus penalties:

    - 0.3 when an answer of >= structure_min_tokens is one block: fewer than 2 paragraphs (blank-line or
      line separated), no list, no heading;
    - 0.1 when an answer of >= headings_min_tokens has paragraphs but no list and no heading;
    - up to 0.4 for very long sentences (> long_sentence_tokens): 0.4 x their share of the prose tokens;
    - up to 0.5 for repeated sentences (same normalized text, >= 10 characters): their share of sentences.

    Code is left out of the sentence checks: fenced blocks, and lines of markup (an HTML table's
    repeated `</tr>` is not redundant prose). So is a labelled stanza that repeats an earlier one
    word for word ("Chorus:" / "合唱：" and the same lines again): a song's refrain, not a loop."""
    cfg = config or ConcisenessConfig()
    tokens = count_tokens(answer) if tokens is None else tokens
    issues: list[str] = []
    penalty = 0.0
    prose = _MARKUP_LINE.sub("", _FENCE.sub("\n\n", answer))
    has_code = prose != answer
    lines = [ln for ln in prose.splitlines() if ln.strip()]
    paragraphs = [p for p in re.split(r"\n\s*\n", prose) if p.strip()]
    has_list = len(_LIST_LINE.findall(prose)) >= 2
    has_heading = bool(_HEADING.search(prose))
    blocks = max(len(paragraphs), len(lines) if len(lines) >= 3 else 1)
    if tokens >= cfg.structure_min_tokens and blocks < 2 and not has_list and not has_heading and not has_code:
        penalty += 0.3
        issues.append(f"a {tokens}-token answer in one block, with no paragraphs, lists or headings")
    elif tokens >= cfg.headings_min_tokens and not has_list and not has_heading:
        penalty += 0.1
        issues.append(f"a {tokens}-token answer with no lists or headings")

    sentences = split_sentences(prose)
    lengths = np.array([count_tokens(s) for s in sentences], dtype=np.int64)
    total = int(lengths.sum())
    long_mask = lengths > cfg.long_sentence_tokens
    if total and long_mask.any():
        share = float(lengths[long_mask].sum()) / total
        penalty += 0.4 * share
        longest = int(lengths.max())
        n_long = int(long_mask.sum())
        issues.append(f"{n_long} very long sentence{'s' if n_long > 1 else ''} (over {cfg.long_sentence_tokens} tokens, longest {longest})")
    keys = [normalize_text(s).lower() for s in split_sentences(_without_refrains(prose))]
    counts = Counter(k for k in keys if len(k) >= _MIN_REPEAT_CHARS)
    repeated = sum(c - 1 for c in counts.values() if c > 1)
    if repeated:
        share = repeated / len(sentences)
        penalty += min(0.5, share)
        issues.append(f"{repeated} repeated sentence{'s' if repeated > 1 else ''} of {len(sentences)}")
    score = round(max(0.0, 1.0 - penalty), 4)
    return Clarity(score, issues, repeated, len(sentences))


# --------------------------------------------------------------------------------------------------
# Length against the cluster


def _without_refrains(prose: str) -> str:
    """The prose with every repeat of a labelled stanza removed: a paragraph whose first line is a
    label ("Chorus:", "[副歌]") and whose lines equal an earlier paragraph's with the same label."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for paragraph in re.split(r"\n\s*\n", prose):
        lines = [ln.strip() for ln in paragraph.strip().splitlines() if ln.strip()]
        if len(lines) >= 3 and _LABEL_LINE.match(lines[0]):
            key = tuple(normalize_text(ln).lower() for ln in lines)
            if key in seen:
                continue
            seen.add(key)
        kept.append(paragraph)
    return "\n\n".join(kept)


def cluster_medians(lengths: Sequence[float], clusters: Sequence[Hashable]) -> dict[Hashable, tuple[float, int]]:
    """{cluster: (median length, number of samples)}; samples whose cluster is None or -1 are left out."""
    by: dict[Hashable, list[float]] = {}
    for length, c in zip(lengths, clusters, strict=True):
        c = c.item() if isinstance(c, np.generic) else c
        if c is None or c == -1:
            continue
        by.setdefault(c, []).append(float(length))
    return {c: (float(np.median(v)), len(v)) for c, v in by.items()}


def _num(x: float) -> str:
    """120.0 -> '120', 120.5 -> '120.5'."""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def _ratio(r: float) -> str:
    return f"{r:.1f}x" if r >= 1 else f"{r:.2f}x"


def conciseness(
    answer: str,
    *,
    cluster: Hashable = None,
    cluster_median: float | None = None,
    cluster_size: int = 0,
    config: ConcisenessConfig | None = None,
    tokens: int | None = None,
) -> MetricResult:
    """Conciseness of one answer given its instruction cluster's median answer length and size (see the
    module docstring). details: tokens, cluster, cluster_median, cluster_size, ratio (or None),
    length_score, clarity, clarity_issues. `tokens` may pass count_tokens(answer) when known."""
    cfg = config or ConcisenessConfig()
    tokens = count_tokens(answer) if tokens is None else tokens
    cl = clarity(answer, cfg, tokens=tokens)
    ratio = None
    if cluster_median is not None and cluster_median > 0 and cluster_size >= cfg.min_cluster_size:
        ratio = tokens / cluster_median
    flags = []
    length_score = 1.0
    if ratio is not None:
        where = f"(cluster {cluster}, median {_num(cluster_median)} tokens)"
        if ratio > 1.5:
            length_score = 1.5 / ratio
        if ratio > cfg.verbose_ratio and tokens >= cfg.verbose_min_tokens:
            flags.append(Flag("verbose", f"answer is {_ratio(ratio)} the median length of similar instructions {where}"))
        if ratio < cfg.terse_ratio and cluster_median >= cfg.terse_min_median:
            length_score = ratio / cfg.terse_ratio
            flags.append(Flag("terse", f"answer is {_ratio(ratio)} the median length of similar instructions {where}: {tokens} tokens"))
    if cl.score < cfg.low_clarity:
        flags.append(Flag("low_clarity", f"clarity {cl.score:.2f} < {cfg.low_clarity:.2f}: " + "; ".join(cl.issues)))
    if cl.repeated >= 2 and cl.repeated / max(cl.sentences, 1) >= cfg.repetitive_share:
        flags.append(Flag("repetitive", f"{cl.repeated} of {cl.sentences} sentences repeat an earlier sentence"))
    details: dict[str, Any] = {
        "tokens": tokens,
        "cluster": cluster,
        "cluster_median": cluster_median,
        "cluster_size": cluster_size,
        "ratio": None if ratio is None else round(ratio, 4),
        "length_score": round(length_score, 4),
        "clarity": cl.score,
        "clarity_issues": cl.issues,
    }
    return MetricResult("conciseness", value=round(length_score * cl.score, 4), flags=flags, details=details)


def conciseness_results(
    answers: Sequence[str], clusters: Sequence[Hashable], config: ConcisenessConfig | None = None
) -> list[MetricResult]:
    """`conciseness` for every answer, in order; clusters[i] is the instruction cluster of answer i (e.g.
    `kmeans_clusters(instruction_emb).labels`; None or -1 for none). Medians are computed over the given
    answers."""
    if len(answers) != len(clusters):
        raise ValueError(f"{len(answers)} answers but {len(clusters)} clusters")
    cfg = config or ConcisenessConfig()
    lengths = [count_tokens(a) for a in answers]
    clusters = [c.item() if isinstance(c, np.generic) else c for c in clusters]
    medians = cluster_medians(lengths, clusters)
    out = []
    for answer, c, tokens in zip(answers, clusters, lengths, strict=True):
        median, size = medians.get(c, (None, 0)) if c is not None else (None, 0)
        out.append(conciseness(answer, cluster=c, cluster_median=median, cluster_size=size, config=cfg, tokens=tokens))
    return out
