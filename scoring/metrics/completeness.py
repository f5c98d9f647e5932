"""Completeness (完备性): does the answer cover every task point the instruction asks for?

Pure Python + NumPy; no Django, no torch. The caller splits the instruction into asks (`split_asks`) and
the answer into sentences (`split_sentences`), embeds both with the sentence model (rows L2-normalized),
and passes the arrays to `completeness`. An ask counts as covered when some answer sentence has cosine
>= threshold with it.

`split_asks` finds, in this order, the first rule that yields at least two asks:

1. enumerated items: "1." "1)" "1、" "(1)" "（1）", "a)" "(a)", "一、" "（一）", "第一，" / "第一步：" ... numbered
   1, 2, 3 ... in order (inline or one per line); the text before the first item (e.g. "Answer the
   following questions:") is not an ask;
2. bullet lines ("- ", "* ", "• ", "· ", "+ ");
3. questions and requests: the text is cut into sentences (。！？.!? ; and newlines), each sentence again
   before a request verb joined by "and" / "then" / "also" / "并且" / "并" / "以及" / "同时" / "还" /
   "然后" / "再" / "另外" / "此外" / a comma ("Explain X and give an example", "请解释X，并举一个例子");
   a piece is an ask when it is a question (ends in ? / ？, or 吗 / 呢) or starts with a request verb
   (after "please" / "请").

Items of rules 1 and 2 must look like tasks (at least 3 tokens, or a question): a list of short data
items ("- apple\\n- pear") is input, not asks. Otherwise the instruction is one ask: [instruction].
Asks are trimmed of list markers, leading conjunctions and trailing separators (。.!！,，;；:：、); a
final ? / ？ is kept.

Pass the instruction without the task's input text where the caller has it: numbered lines or questions
in the input (a text to summarize) are not asks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Flag, MetricResult

# Tuned with all-MiniLM-L6-v2 on 22 English instructions with two or three asks, each with a full answer
# and one missing its last ask: at 0.3, 2 of 22 full answers are flagged and 15 of 22 gaps are caught;
# at 0.5, 12 of 22 full answers would be flagged. Short follow-up asks ("give an example") match their
# answer sentence weakly (0.2-0.45), so a high threshold is noisy. The model is English-only: Chinese
# asks separate poorly with it (use a multilingual embedder for Chinese data).
DEFAULT_THRESHOLD = 0.3
REASON_ASK_CHARS = 60
MIN_ITEM_TOKENS = 3

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def _tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


# --------------------------------------------------------------------------------------------------
# Sentences


_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.S | re.M)
_LINE_MARKER = re.compile(
    r"^\s*(?:[-*+•·●▪]\s+|#{1,6}\s+|>\s*|\d{1,3}(?:[.)](?!\d)|、)\s*|[a-zA-Z][.)]\s+|[(（]\d{1,3}[)）]\s*|[一二三四五六七八九十]{1,3}、\s*)"
)
# End of a sentence: CJK or Latin !? (with closing quotes/brackets), a Latin period or ellipsis followed by
# a space and not by a lower-case letter (so "e.g. the" and "3.14" stay whole).
_SENTENCE_END = re.compile(r"""(?:[。！？!?]+|…+|\.{3})[”"'’」』)）\]]*|(?<=[^\s\d])\.[”"'’)\]]*(?=\s+(?![a-z]))""")
_WORDY = re.compile(r"\w")


def split_sentences(text: str) -> list[str]:
    """The sentences of an answer, English or Chinese, in order: split at 。！？!? (and …), at a Latin
    period followed by a space and a non-lower-case letter, and at newlines. A fenced code block (``` or
    ~~~) stays whole, fences included. Markdown list markers, heading marks and quote marks at the start
    of a line are dropped; pieces with no letter or digit ("---", "**") are dropped; the rest is stripped."""
    out: list[str] = []
    pos = 0
    for m in _FENCE.finditer(text):
        out += _prose_sentences(text[pos : m.start()])
        block = m.group(0).strip()
        if block:
            out.append(block)
        pos = m.end()
    out += _prose_sentences(text[pos:])
    return out


def _prose_sentences(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = _LINE_MARKER.sub("", line, count=1).strip()
        if not line:
            continue
        start = 0
        for m in _SENTENCE_END.finditer(line):
            _keep(out, line[start : m.end()])
            start = m.end()
        _keep(out, line[start:])
    return out


def _keep(out: list[str], piece: str) -> None:
    piece = piece.strip()
    if piece and _WORDY.search(piece):
        out.append(piece)


# --------------------------------------------------------------------------------------------------
# Asks

_CN_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}


def _cn_number(s: str) -> int:
    """一..十, 十一..十九, 二十..九十九 as int (enough for item numbers); -1 for anything else."""
    d = [_CN_DIGITS[c] for c in s]
    if len(d) == 1:
        return d[0]
    if len(d) == 2 and d[0] == 10 and d[1] < 10:
        return 10 + d[1]
    if len(d) == 2 and d[0] < 10 and d[1] == 10:
        return d[0] * 10
    if len(d) == 3 and d[0] < 10 and d[1] == 10 and d[2] < 10:
        return d[0] * 10 + d[2]
    return -1


_CN_NUM = "[一二三四五六七八九十]{1,3}"
_BEFORE = r"(?:(?<=^)|(?<=[\s:：;；,，。.!?！？、]))"
# One pattern per kind of enumeration; each yields (number, marker span). Kinds are not mixed.
_ENUMERATIONS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(rf"{_BEFORE}(\d{{1,2}})(?:[.．](?!\d)|[)）、])"), int),
    (re.compile(rf"{_BEFORE}[(（](\d{{1,2}})[)）]"), int),
    (re.compile(rf"{_BEFORE}[(（]?([a-h])[)）]"), lambda s: ord(s) - ord("a") + 1),
    (re.compile(rf"{_BEFORE}({_CN_NUM})、"), _cn_number),
    (re.compile(rf"{_BEFORE}[(（]({_CN_NUM})[)）]"), _cn_number),
    (re.compile(rf"第({_CN_NUM})(?:步|点|部分|个问题|题|个|项)?[，,、：:．.]"), _cn_number),
]
_BULLET = re.compile(r"^[ \t]*[-*+•·●▪][ \t]+(.+)$", re.M)

_CONJ_EN = r"(?:and\s+then|and\s+also|and|then|also|as\s+well\s+as|plus)"
_CONJ_ZH = r"(?:并且|并|以及|同时|还要|还需|还|然后|再|另外|此外|最后|接着)"
_VERBS_EN = (
    r"(?:give|provide|explain|describe|list|write|compare|name|suggest|summarize|summarise|discuss|identify|outline|define|"
    r"calculate|compute|translate|classify|generate|create|recommend|illustrate|analyze|analyse|evaluate|tell|show|"
    r"answer|rewrite|propose|cite|mention|include|determine|predict|estimate|find|justify|elaborate|brainstorm|"
    r"draft|compose|categorize|convert|solve|prove|derive|implement|add|specify)\b(?!\s+of\b)"
)
_VERBS_ZH = (
    "(?:举例|举一个|举个|举几个|举出|举|给出|给我|列出|列举|说明|解释|分析|描述|介绍|比较|对比|写出|写一|写|提供|总结|概括|翻译|计算|"
    "指出|谈谈|讨论|推荐|评价|阐述|回答|判断|分类|生成|编写|设计|提出|说说|讲讲|讲述|证明|预测|推导|实现|补充|告诉)"
)
_PLEASE = r"(?:(?:please|kindly|could\s+you|can\s+you|would\s+you)\s+|请问|请你|请)?"
_REQUEST = re.compile(rf"^\s*{_PLEASE}(?:{_VERBS_EN}|{_VERBS_ZH})", re.I)
# More imperatives that open a list item ("1. Sort the list 2. Remove duplicates"), not used to cut text
_ITEM_VERB = re.compile(
    r"^\s*(?:sort|remove|delete|print|replace|fix|check|edit|use|read|open|install|run|return|count|reverse|split|merge|"
    r"update|insert|format|plot|draw|test|build|choose|select|pick|make|take|keep|save|load|set|get|search|filter|"
    r"clean|change|move|copy|paste|click|enter|type|sign|log|go|visit|call|send|pay|buy|book|cook|mix|bake|wash)\b",
    re.I,
)
_WH_WORD = re.compile(
    r"^\s*(?:(?:what|why|how|who|which|where|when)\b|什么|为什么|为何|怎么|怎样|如何|哪|谁|是否|是不是|有没有|能否)", re.I
)
# Cut a sentence before a request verb joined by a conjunction or a comma.
_JOIN = re.compile(
    rf"(?:,?\s+{_CONJ_EN}\s+|[,，;；]\s*(?:{_CONJ_EN}\s+)?)(?={_PLEASE}{_VERBS_EN})|"
    rf"(?:[,，;；]\s*)?{_CONJ_ZH}(?={_PLEASE}{_VERBS_ZH})|[,，;；]\s*(?={_PLEASE}{_VERBS_ZH})",
    re.I,
)
_LEAD = re.compile(rf"^\s*(?:{_CONJ_EN}\s+(?={_PLEASE}{_VERBS_EN})|{_CONJ_ZH}(?={_PLEASE}{_VERBS_ZH}))", re.I)
_TRAIL = re.compile(r"[\s。.!！,，;；:：、]+$")
_ASK_SENTENCE_END = re.compile(r"""(?<=[。！？!?])[”"'’」』)）]*\s*|(?<=[^\s\d.])\.[”"'’)]*\s+(?![a-z])|\n+""")
# Words in the text before a list that say the list holds the asks ("Answer the following questions:")
_ASKS_FOLLOW = re.compile(r"questions?|tasks?|steps?|points?|problems?|exercises?|问题|任务|步骤|要求|几点|题", re.I)


def _clean_ask(text: str) -> str:
    text = _LEAD.sub("", text.strip(), count=1)
    return _TRAIL.sub("", text).strip()


def _is_question(piece: str) -> bool:
    p = _TRAIL.sub("", piece)
    return p.endswith(("?", "？")) or p.endswith(("吗", "呢"))


def _accept_items(intro: str, items: list[str]) -> list[str] | None:
    """Items of a list are asks when there are at least two, each looks like a task (>= 3 tokens, a
    question, or opens with a request verb or another imperative), and either the text before the list
    is empty, ends with a colon or speaks of questions / tasks / steps, or every item is itself a
    question or a request. Otherwise the list is data (the input of the task), not asks."""
    items = [i for i in items if i]
    if len(items) < 2 or not all(
        _tokens(i) >= MIN_ITEM_TOKENS or _is_question(i) or _REQUEST.search(i) or _ITEM_VERB.search(i) for i in items
    ):
        return None
    intro = intro.strip()
    if not intro or intro.endswith((":", "：")) or _ASKS_FOLLOW.search(intro):
        return items
    if all(_is_question(i) or _REQUEST.search(i) for i in items):
        return items
    return None


def _enumerated(text: str) -> list[str] | None:
    """Items of the first kind of enumeration numbered 1, 2, ... (at least two) that are asks, else None."""
    for pattern, to_int in _ENUMERATIONS:
        marks = [(to_int(m.group(1)), m.start(), m.end()) for m in pattern.finditer(text)]
        if len(marks) < 2:
            continue
        chosen: list[tuple[int, int, int]] = []
        for number, start, end in marks:  # greedy: 1, then the next 2 after it, ...
            if number == len(chosen) + 1 and (not chosen or start >= chosen[-1][2]):
                chosen.append((number, start, end))
        if len(chosen) < 2:
            continue
        bounds = [*(c[1] for c in chosen[1:]), len(text)]
        items = _accept_items(text[: chosen[0][1]], [_clean_ask(text[c[2] : b]) for c, b in zip(chosen, bounds, strict=True)])
        if items:
            return items
    return None


def _bullets(text: str) -> list[str] | None:
    found = list(_BULLET.finditer(text))
    if len(found) < 2:
        return None
    return _accept_items(text[: found[0].start()], [_clean_ask(m.group(1)) for m in found])


def _questions_and_requests(text: str) -> list[str]:
    asks = []
    for sentence in _ASK_SENTENCE_END.split(text):
        if not sentence or not sentence.strip():
            continue
        # spans (start of the text kept, start of the piece, end): a cut drops its conjunction
        spans: list[tuple[int, int, int]] = []
        start = 0
        for m in _JOIN.finditer(sentence):
            spans.append((start, m.start()))
            start = m.end()
        spans.append((start, len(sentence)))
        merged: list[str] = []
        prev_start = 0
        for a, b in spans:  # a piece of fewer than 2 tokens stays with the one before, joiner included
            if merged and _tokens(sentence[a:b]) < 2:
                merged[-1] = sentence[prev_start:b]
            else:
                merged.append(sentence[a:b])
                prev_start = a
        for piece in merged:
            cleaned = _clean_ask(piece)
            if not cleaned:
                continue
            # a wh-question without "?" counts only beside a joined request ("What is X and give an example")
            if _is_question(piece) or _REQUEST.search(cleaned) or (len(merged) > 1 and _WH_WORD.search(cleaned)):
                asks.append(cleaned)
    return asks


def split_asks(instruction: str) -> list[str]:
    """The separate task points of an instruction (see the module docstring for the rules); a single ask
    gives [instruction] unchanged. An empty instruction gives []."""
    if not instruction.strip():
        return []
    for rule in (_enumerated, _bullets):
        items = rule(instruction)
        if items:
            return items
    asks = _questions_and_requests(instruction)
    return asks if len(asks) >= 2 else [instruction]


# --------------------------------------------------------------------------------------------------
# The metric


def _shorten(text: str, limit: int = REASON_ASK_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _floor2(x: float) -> str:
    """Two decimals, rounded down, so a score shown below a threshold is below it."""
    return f"{math.floor(x * 100 + 1e-9) / 100:.2f}"


def completeness(
    asks: Sequence[str] | None,
    asks_emb: Any,
    answer_sentence_emb: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> MetricResult:
    """How many of the instruction's asks the answer covers.

    asks: the ask texts (for the reason; None names them "ask 1", "ask 2", ...). asks_emb: (m, d) their
    embeddings; answer_sentence_emb: (s, d) the embeddings of the answer's sentences; rows L2-normalized.
    An ask is covered when its best cosine with any answer sentence is >= threshold.

    value: the share of covered asks, or None with fewer than two asks (one ask cannot be partly
    answered; details still hold its best cosine). Flag "incomplete" when at least two asks and not all
    are covered, reason e.g. "answer covers 1 of 2 asks; not covered: 'give an example' (best cosine
    0.21)", asks shortened to 60 characters; an answer without sentences: "answer has no sentences; not
    covered: 'Explain X', 'give an example'". details: asks, covered, best (cosine per ask, 4 decimals;
    None without sentences), uncovered (0-based indices)."""
    a = np.asarray(asks_emb, dtype=np.float32)
    s = np.asarray(answer_sentence_emb, dtype=np.float32)
    if a.ndim == 1 and a.size == 0:
        a = a.reshape(0, s.shape[1] if s.ndim == 2 else 0)
    if a.ndim != 2:
        raise ValueError(f"asks_emb must be (m, d), got shape {a.shape}")
    m = a.shape[0]
    if asks is not None and len(asks) != m:
        raise ValueError(f"{len(asks)} asks but {m} ask embeddings")
    empty = s.size == 0
    if empty:
        best = np.full(m, -np.inf, dtype=np.float64)
    else:
        if s.ndim != 2 or s.shape[1] != a.shape[1]:
            raise ValueError(f"answer_sentence_emb must be (s, {a.shape[1]}), got shape {s.shape}")
        best = (a @ s.T).max(axis=1).astype(np.float64)
    covered_mask = best >= threshold
    covered = int(covered_mask.sum())
    uncovered = np.flatnonzero(~covered_mask).tolist()
    details = {
        "asks": m,
        "covered": covered,
        "best": [None if empty else round(float(b), 4) for b in best],
        "uncovered": uncovered,
    }
    if m < 2:
        return MetricResult("completeness", value=None, details=details)
    flags = []
    if uncovered:
        names = []
        for i in uncovered:
            name = f"'{_shorten(asks[i])}'" if asks is not None else f"'ask {i + 1}'"
            names.append(name if empty else f"{name} (best cosine {_floor2(best[i])})")
        lead = "answer has no sentences" if empty else f"answer covers {covered} of {m} asks"
        flags.append(Flag("incomplete", f"{lead}; not covered: {', '.join(names)}"))
    return MetricResult("completeness", value=round(covered / m, 4), flags=flags, details=details)
