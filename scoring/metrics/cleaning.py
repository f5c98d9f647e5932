"""Cleaning rules: cheap, explainable checks that find broken instruction-tuning samples.

Pure Python (standard library only); no Django, so it runs on a GPU box with only torch/transformers.

A sample is a conversation, ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``:

* the *answer* is the last assistant message (missing = empty);
* the *instruction* is the last user message before that answer (earlier turns are context; the
  garbage-character rule also scans them). Alpaca-style imports joined ``instruction + "\\n\\n" +
  input``, so the *input* is the part of the instruction after its first blank line, and the
  *instruction part* the part before it (the whole turn when there is no blank line).

:func:`clean_sample` runs every rule and returns one :class:`MetricResult` per rule, in the order of
:data:`RULES`, so a report can show each rule's value even when it raised no flag.
:func:`cleaning_flags` returns only the flags.

Tokens (:func:`count_tokens`) are counted without a tokenizer, in a way that works for Chinese:
each CJK character (Han, kana, Hangul) is one token, each run of other letters and digits is one
token, and each other non-space character (punctuation, symbol, emoji) is one token. "Hello, 世界!"
is 5 tokens. It is roughly comparable to subword tokenizers for Chinese and a bit under them for
English.

Regexes are compiled at import (the special-character class on first use); the rules together
take about 8 s of CPU on the 52,002 Alpaca samples on a busy two-core machine, and nothing they
do costs more than linear time in the text, except difflib on the rare near-copies (capped).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from .base import Flag, MetricResult
from .text import _CJK, _TOKEN, count_tokens, detect_language, normalize_text

__all__ = ["RULES", "CleaningConfig", "clean_sample", "cleaning_flags", "count_tokens", "repeated_ngram_ratio"]

RULES = (
    "empty_answer",
    "placeholder",
    "answer_length",
    "refusal",
    "only_punctuation_or_stopwords",
    "repetition",
    "garbage_characters",
    "truncated_answer",
    "unseeable_input",
    "copies_instruction",
    "wrong_language",
)


@dataclass
class CleaningConfig:
    """Thresholds of the cleaning rules. The defaults were tuned on Alpaca (en, 52k) and its Chinese
    translation (20k) to flag little that a person would keep."""

    #: answer_length: an answer under this many tokens (see :func:`count_tokens`) is too short. 1 keeps
    #: correct one-token answers ("4" to "2+2?"); an empty answer is left to ``empty_answer``.
    min_answer_tokens: int = 1
    #: answer_length: an answer over this many tokens is too long.
    max_answer_tokens: int = 4096

    #: repetition: character n-gram size (10 suits Chinese, which has no spaces).
    char_ngram: int = 10
    #: repetition: flag when more than this share of the answer's character n-grams are repeats.
    max_char_repetition: float = 0.5
    #: repetition: word n-gram size (words = runs of two or more non-CJK letters, lower-cased).
    word_ngram: int = 3
    #: repetition: flag when more than this share of the answer's word n-grams are repeats.
    max_word_repetition: float = 0.5
    #: repetition: a ratio is only judged over at least this many n-grams (short texts are noisy).
    min_ngrams: int = 20
    #: repetition: only the first this many characters are scanned (speed cap).
    repetition_max_chars: int = 20000

    #: garbage_characters: flag when more than this share of the answer's or the instruction's
    #: characters are special (see :func:`garbage_characters`).
    max_garbage_ratio: float = 0.02

    #: copies_instruction: flag when the SequenceMatcher ratio over the tokens of the normalized,
    #: lower-cased answer and instruction part is at least this and the answer adds no content word.
    copy_similarity: float = 0.8
    #: copies_instruction: an answer found whole inside the instruction counts as a copy when it is at
    #: least this many characters long and at least ``copy_contained_share`` of the instruction.
    copy_contained_min_chars: int = 20
    copy_contained_share: float = 0.5
    #: copies_instruction: answer and instruction are cut to this many characters before comparing.
    copy_max_chars: int = 2000

    #: wrong_language: each side needs at least this many letter tokens (a CJK character or a word)
    #: for its language to be judged.
    language_min_tokens: int = 5
    #: wrong_language: a side is "mostly code" (and not judged) when this share of it is code.
    language_code_share: float = 0.5

    #: refusal: a refusal phrase counts when it starts within this many characters of the answer...
    refusal_head_chars: int = 200
    #: ...or when the sentences containing refusal phrases make up at least this share of the answer.
    refusal_boilerplate_share: float = 0.5


_DEFAULT = CleaningConfig()

# --- character classes ----------------------------------------------------------------------------

_LETTER_TOKEN = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}][^\W_{_CJK}]*")
_WORD = re.compile(rf"[^\W_{_CJK}]+")  # runs of non-CJK letters/digits
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_WORD_OR_CJK_RUN = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")
_CONTENT_CHAR = re.compile(r"[^\W_]")


def _words(text: str) -> list[str]:
    """A word list written as one string (easier to read and edit than a list of literals)."""
    return text.split()


def _letter_tokens(text: str) -> int:
    """Tokens that carry letters: CJK characters and words starting with a letter."""
    return len(_LETTER_TOKEN.findall(text))


# Code: fenced blocks, and lines that look like code (HTML too, also HTML-escaped as in some imports).
_FENCE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(
    r"\s*(?:[{}\[\]();]|(?:def|class|import|from|return|if|elif|else|for|while|function|var|let|const|public|private|static|"
    r"#include|int|void|print|console\.|SELECT|INSERT|UPDATE|CREATE|<\w+|&lt;|</|//|/\*|#)\b)"
)
_CODE_END = (";", "{", "}", ">", "&gt;")
_CALL = re.compile(r"\w\(")
_ASSIGN = re.compile(r"[\w\])]\s*[-+*/%|&^]?=\s*\S")
_SYMBOL = re.compile(r"[^\w\s]")
_CODE_CHAR = re.compile(r"[\[\]{}\\^$|*+<>=/@#~`]")  # symbols of code and regexes, rare in prose


def _is_code_line(line: str) -> bool:
    """A line that starts like code (a keyword, a tag, a bracket, a comment), ends like code (";",
    "{", "}", a tag), is a call ("f(x)", "def f(x):") or an assignment ("x = 1", "a[i] += 1")."""
    if _CODE_START.match(line):
        return True
    t = line.rstrip()
    if t.endswith(_CODE_END):
        return True
    if t.endswith((")", "):")) and _CALL.search(t):
        return True
    return "=" in t and _ASSIGN.search(t) is not None


def _is_structured(line: str) -> bool:
    """A line of code, markup, a table row or a regex: repetition there is by design."""
    if _is_code_line(line) or line.count("|") >= 2:
        return True
    n = len(line.strip())
    return n >= 8 and _CODE_CHAR.search(line) is not None and len(_SYMBOL.findall(line)) >= 0.3 * n


def _prose(text: str) -> str:
    """text without fenced code blocks and without lines that look like code, markup or tables."""
    if "```" in text:
        text = _FENCE_BLOCK.sub("\n", text)
    lines = text.split("\n")
    if len(lines) == 1:
        return "" if _is_structured(text) else text
    return "\n".join(ln for ln in lines if not _is_structured(ln))


def _code_share(text: str) -> float:
    """Share of the text's characters inside ``` fences or on lines that look like code."""
    if not text:
        return 0.0
    fenced = sum(len(m.group(0)) for m in _FENCE_BLOCK.finditer(text))
    rest = _FENCE_BLOCK.sub("\n", text) if fenced else text
    lines = [ln for ln in rest.split("\n") if ln.strip()]
    fenced += sum(len(ln) for ln in lines if _is_code_line(ln))
    return min(1.0, fenced / len(text))


# --- the sample ------------------------------------------------------------------------------------

_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class _Sample:
    answer: str
    has_answer: bool
    instruction: str  # last user turn before the answer
    instruction_part: str  # before the first blank line
    input_part: str | None  # after the first blank line; None when there is none
    user_text: str  # all user turns


def _sample(messages: Iterable[Mapping[str, str]]) -> _Sample:
    msgs = list(messages)
    answer_at = None
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].get("role") == "assistant":
            answer_at = i
            break
    answer = (msgs[answer_at].get("content") or "") if answer_at is not None else ""
    before = msgs[:answer_at] if answer_at is not None else msgs
    users = [m.get("content") or "" for m in before if m.get("role") == "user"]
    if answer_at is not None:  # user turns after the answer still belong to the sample's text
        users += [m.get("content") or "" for m in msgs[answer_at + 1 :] if m.get("role") == "user"]
    instruction = next((m.get("content") or "" for m in reversed(before) if m.get("role") == "user"), "")
    parts = _BLANK_LINE.split(instruction.strip(), maxsplit=1)
    input_part = parts[1].strip() if len(parts) == 2 else None
    return _Sample(
        answer=answer,
        has_answer=answer_at is not None,
        instruction=instruction,
        instruction_part=parts[0].strip(),
        input_part=input_part,
        user_text="\n\n".join(users),
    )


def _tail(text: str, n: int = 40) -> str:
    """The last n characters, whitespace collapsed, with '...' when cut."""
    text = " ".join(text[-8 * n :].split()) if len(text) > 8 * n else " ".join(text.split())
    return text if len(text) <= n else "..." + text[-n:]


def _head(text: str, n: int = 40) -> str:
    """The first n characters, whitespace collapsed, with '...' when cut."""
    text = " ".join(text[: 8 * n].split()) if len(text) > 8 * n else " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


# --- empty_answer ----------------------------------------------------------------------------------


def _empty_answer(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    empty = not s.answer.strip()
    flags = []
    if empty:
        flags.append(Flag("empty_answer", "answer is empty" if s.has_answer else "answer is missing: no assistant message"))
    return MetricResult("empty_answer", empty, flags)


# --- placeholder -----------------------------------------------------------------------------------

# Compared after lower-casing and dropping everything but letters and digits ("N/A." -> "na",
# "<noinput>" -> "noinput"). "na" is matched only in upper case or with a separator ("NA", "N/A",
# "n/a", "N.A.") so that "Na" (sodium) is not a placeholder.
_PLACEHOLDER_WORDS = frozenset(
    ["noinput", "nooutput", "noanswer", "noresponse", "none", "null", "nil", "无", "暂无", "空", "无输入", "无输出", "没有输入"]
)
_PLACEHOLDER_PUNCT = frozenset(["-", "--", "---", "—", "–", "...", "…", "……", "。。。", "/"])
_NON_ALNUM = re.compile(r"[\W_]+")
_NA = re.compile(r"NA|n/a|N/A|N\.A\.?|n\.a\.?|N/a", re.ASCII)


def _placeholder_of(text: str) -> str | None:
    """The placeholder a whole field is (stripped), or None."""
    t = text.strip()
    if not t or len(t) > 24:
        return None
    if t in _PLACEHOLDER_PUNCT:
        return t
    key = _NON_ALNUM.sub("", t.lower())
    if key in _PLACEHOLDER_WORDS:
        return t
    if key == "na" and _NA.fullmatch(t.strip(" .!?;:()[]<>\"'")):
        return t
    return None


_OPTION_WORDS = frozenset(["none", "null", "nil", "无", "空"])
_OPTION_RE = {w: re.compile(rf"\b{w}\b", re.IGNORECASE) for w in _OPTION_WORDS if w.isascii()}


def _is_offered_option(placeholder: str, instruction: str) -> bool:
    """An answer "None" / "无" is a real answer when the instruction offers it ("positive, negative, or
    none"; "有无语法错误")."""
    key = _NON_ALNUM.sub("", placeholder.lower())
    if key not in _OPTION_WORDS:
        return False
    rx = _OPTION_RE.get(key)
    return rx.search(instruction) is not None if rx else key in instruction


def _placeholder(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    """Value: the placeholder found (the answer's first), or None. A field is a placeholder when, whole
    and stripped, it is one of N/A, NA, none, null, nil, <noinput>, <nooutput>, "No input", "No
    output", 无, 暂无, 空, 无输入, -, ... (case and punctuation aside: "<No Input>", "N/A.", "(noinput)").
    Checked: the answer, the instruction part and the input. "Na" is not "NA" (sodium), and an answer
    "None"/"无" is fine when the instruction offers it as an option."""
    flags = []
    found = {}
    checks = [("answer", s.answer)]
    if s.input_part is None:
        checks.append(("instruction", s.instruction))
    else:
        checks += [("instruction", s.instruction_part), ("input", s.input_part)]
    for where, text in checks:
        p = _placeholder_of(text)
        if p is not None and where == "answer" and _is_offered_option(p, s.instruction):
            continue
        if p is not None:
            found[where] = p
            flags.append(Flag("placeholder", f"{where} is a placeholder: '{p}'"))
    return MetricResult(
        "placeholder", found.get("answer") or next(iter(found.values()), None), flags, {"placeholders": found} if found else {}
    )


# --- answer_length ---------------------------------------------------------------------------------


def _answer_length(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    n = count_tokens(s.answer)
    flags = []
    if n == 0:
        pass  # empty_answer says it
    elif n < cfg.min_answer_tokens:
        flags.append(Flag("answer_length", f"answer is {n} token{'s' if n != 1 else ''}, under the minimum of {cfg.min_answer_tokens}"))
    elif n > cfg.max_answer_tokens:
        flags.append(Flag("answer_length", f"answer is {n} tokens, over the maximum of {cfg.max_answer_tokens}"))
    return MetricResult("answer_length", n, flags)


# --- refusal ---------------------------------------------------------------------------------------

# Boilerplate that refuses by itself ("As an AI language model", "cannot be done by a GPT model").
_REFUSAL_STRONG = [
    r"\bas an ai language model\b",
    r"\bas an ai(?: assistant| model| system)?,?\s+i\b",
    r"\bas a (?:large )?language model\b",
    r"\bi(?:'m| am) (?:just |only |merely )?an? (?:ai|artificial intelligence|(?:large )?language model|computer program|virtual assistant|chatbot)\b",
    r"\bthis (?:type of |kind of )?(?:task|instruction|request|question) (?:cannot|can't|can not) be (?:\w+ed|done)\b",
    r"\b(?:the|this) (?:task|instruction|request) (?:requires|involves|needs) (?:creating |generating |producing |making |a |an |the )*"
    r"(?:visual|graphical|physical|non-text|non-textual|audio|audible|image)",
    r"\b(?:creating|generating|producing|requires|involves) (?:a |an )?(?:visual|audio|audible) output",
    r"\bunable to (?:perform|complete|fulfill|fulfil|carry out) (?:this|the) (?:task|instruction|request)",
    r"作为一个ai语言模型",
    r"作为一?个?(?:ai|人工智能|语言模型)(?:语言模型|助手|模型|程序)?[，,]\s*我",
    r"我(?:只是|是)一?个?(?:ai|人工智能|语言模型|计算机程序|虚拟助手|聊天机器人)(?:[，,。]|语言模型|助手|模型|程序)",
    r"涉及(?:创建|生成)?[^。！？\n]{0,12}视觉(?:输出|信息)",
    r"无法完成(?:此|这个|该|这项)任务|(?:此|这个|该|这项)任务(?:无法|不能)(?:完成|执行)",
    r"由于[^。！？\n]{0,10}模型的?(?:限制|局限)",
]
# Statements that a (GPT / language) model cannot do the task: refusal boilerplate, except when the
# instruction is itself about models or AI ("What can't a GPT model do?").
_REFUSAL_MODEL = [
    r"\b(?:cannot|can't|can not|unable to|not able to|not possible)\b[^.!?\n]{0,50}?\b(?:by|for) (?:a |an |the |this |any )?(?:gpt[- ]?\d? )?"
    r"(?:large )?(?:language|ai|text-based) models?\b",
    r"\b(?:generated|created|produced|done|completed|performed|fulfilled|accomplished) by (?:a|an|the|this) (?:gpt[- ]?\d? )?model\b",
    r"\bgpt(?:[- ]?\d)?(?: language)? models? (?:cannot|can't|can not|is unable|are unable|is not able|are not able|will not be able|"
    r"is not capable|are not capable|is not designed|are not designed|does not have|do not have)",
    r"\b(?:the|a|this) (?:gpt |language |ai )*model (?:cannot|can't|can not|is unable to|is not able to) "
    r"(?:generate|create|produce|perform|output|provide|take|make|draw|play)\b",
    r"\bdoes not meet the requirements of (?:a |the )?gpt",
    r"\b(?:due to|because of|given) (?:the )?(?:limitations?|constraints?|nature|unreliab\w+) of (?:a |the |this )?(?:gpt|language model|ai model|text-based)",
    r"\b(?:beyond|outside) (?:the )?(?:scope|capabilit(?:y|ies)|abilit(?:y|ies)) of (?:a |an |the |this )?(?:gpt|language model|ai|model)\b",
    r"gpt\s*(?:语言)?模型(?:是)?(?:无法|不能|没法)",
    r"(?:语言|gpt|ai)模型(?:是)?(?:无法|不能|没法)做到",
]
_INSTRUCTION_ABOUT_MODELS = re.compile(
    r"gpt|language model|\bai\b|artificial intelligence|chatbot|语言模型|人工智能|聊天机器人", re.IGNORECASE
)
# "I cannot / 我无法" + a verb of doing the task: a refusal only in the answer's first sentence (after
# an optional apology), and not when the instruction is itself about not being able to.
_REFUSAL_INABILITY = [
    r"\b(?:i|we) (?:cannot|can't|can not|am unable to|'m unable to|are unable to|am not able to|'m not able to|do not have the ability to|"
    r"don't have the ability to|won't be able to|will not be able to) (?:physically |directly |currently |actually )?"
    r"(?:help(?! but)|assist|answer|provide|complete|perform|fulfill|fulfil|comply|generate|create|produce|draw|design|play|display|show|"
    r"access|browse|open|view|see|watch|listen|hear|predict|process|execute|carry out|determine|verify|record|sing|send|upload|download|"
    r"take|submit|search|look up|find|compose|paint|build|edit|print|run|output|do that|do this|do so)\b",
    r"^\W*unable to (?:perform|complete|fulfill|do|generate|create|produce|provide)\b",
    r"\bi do(?:n't| not) have (?:the ability|access to|the capability|a physical|eyes|a body)\b",
    r"我们?(?:无法|不能|没法|没有办法|不可以)(?:直接|实际)?(?:回答|提供|完成|执行|帮助|帮你|帮您|访问|查看|打开|生成|创建|绘制|画|播放|看到|听到|"
    r"浏览|确定|预测|满足|处理|给出|做到|用|为您|为你|上传|下载|发送|录制|演奏|唱)",
    r"(?:这|此)(?:项任务|个任务|任务)?无法完成",
]
_CURLY = str.maketrans({"\u2019": "'", "\u2018": "'"})
_REFUSAL_STRONG_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_STRONG), re.IGNORECASE)
_REFUSAL_INABILITY_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_INABILITY), re.IGNORECASE)
_REFUSAL_MODEL_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_STRONG + _REFUSAL_MODEL), re.IGNORECASE)
_REFUSAL_ANY_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_STRONG + _REFUSAL_MODEL + _REFUSAL_INABILITY), re.IGNORECASE)
_REFUSAL_ANY_NO_MODEL_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_STRONG + _REFUSAL_INABILITY), re.IGNORECASE)
_APOLOGY = re.compile(
    r"^\W*(?:(?:i'm|i am|we are|we're) (?:so |very |really |truly )?sorry|sorry|i apologi[sz]e|we apologi[sz]e|unfortunately|regrettably|"
    r"(?:很|非常|十分)?抱歉|对不起|很遗憾|不好意思)",
    re.IGNORECASE,
)
_INSTRUCTION_ABOUT_INABILITY = re.compile(
    r"can't|cannot|can not|unable|not able|impossible|refus|declin|无法|不能|没法|拒绝|不可能", re.IGNORECASE
)
_DIALOGUE_START = re.compile(r"^\s*(?:[\"“'‘「]|[^\n:：]{1,30}[:：]\s*\S)")
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？\n]*")
# Every refusal pattern contains one of these (lower-cased); most answers contain none and skip the regexes.
_REFUSAL_KEYS = (
    "an ai", "language model", "gpt", "cannot", "can't", "can not", "unable", "not able", "not possible", "be able", "don't have",
    "do not have", "task requires", "task involves", "task needs", "instruction requires", "instruction involves", "request requires",
    "request involves", "instruction needs", "request needs", "visual output", "audio output", "audible output", "by the model", "by a model", "by this model",
    "model cannot", "model can't", "model can not", "model is unable", "model is not able", "ai model", "text-based", "scope of",
    "capability of", "capabilities of", "ability of", "abilities of", "artificial intelligence", "computer program",
    "virtual assistant", "chatbot", "作为", "我只是", "我是", "模型", "视觉", "无法", "不能", "没法", "办法", "不可以",
)  # fmt: skip


def _first_sentences_end(answer: str) -> int:
    """End of the answer's first sentence, or of its second when the first is an apology."""
    m = _SENTENCE_END.search(answer)
    end = m.end() if m else len(answer)
    if _APOLOGY.match(answer):
        m2 = _SENTENCE_END.search(answer, end)
        end = m2.end() if m2 else len(answer)
    return end


def _refusal(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    """A refusal is (a) refusal boilerplate ("As an AI language model", "this task cannot be completed
    by a GPT model", "作为一个AI语言模型，我") starting in the first refusal_head_chars characters, or
    (b) "I cannot / I'm unable to / 我无法 + a verb of doing the task" in the first sentence, after an
    optional apology ("I'm sorry, but I can't help with that"); (b) is skipped for dialogues and
    quotations and when the instruction itself is about not being able to ("Reword: I can't do it").
    An apology alone ("I'm sorry to hear that", a customer-service reply) is not a refusal. A longer
    answer is also flagged when the sentences holding such phrases make up most of it."""
    answer = s.answer.translate(_CURLY) if ("\u2019" in s.answer or "\u2018" in s.answer) else s.answer
    low = answer.lower()
    if not any(k in low for k in _REFUSAL_KEYS):
        return MetricResult("refusal", None)
    head_end = cfg.refusal_head_chars
    head_low = low[: head_end + 60]
    keyed_head = any(k in head_low for k in _REFUSAL_KEYS)
    about_models = None
    m = None
    if keyed_head:
        about_models = bool(_INSTRUCTION_ABOUT_MODELS.search(s.instruction))
        m = (_REFUSAL_STRONG_RE if about_models else _REFUSAL_MODEL_RE).search(answer, 0, head_end + 60)
    if m and m.start() < head_end:
        return _refusal_result(answer, m.start(), m.end())
    lead = answer.lstrip()
    if keyed_head and not _DIALOGUE_START.match(lead) and not _INSTRUCTION_ABOUT_INABILITY.search(s.instruction):
        end = _first_sentences_end(lead)
        m = _REFUSAL_INABILITY_RE.search(lead, 0, end)
        if m:
            a = _APOLOGY.match(lead)
            start = a.start() if a and m.start() - a.start() < 40 else m.start()
            return _refusal_result(lead, start, m.end())
    if len(answer) <= head_end:
        return MetricResult("refusal", None)
    # Share of the answer taken by the sentences that hold a refusal phrase (only sentences holding a
    # key word are searched: the regex over whole answers would be the slowest part of this module).
    if about_models is None:
        about_models = bool(_INSTRUCTION_ABOUT_MODELS.search(s.instruction))
    rx = _REFUSAL_ANY_NO_MODEL_RE if about_models else _REFUSAL_ANY_RE
    covered = 0
    phrase = None
    for sm in _SENTENCE.finditer(answer):
        sentence = sm.group(0)
        if len(sentence) < 8:
            continue
        low_sentence = sentence.lower()
        if any(k in low_sentence for k in _REFUSAL_KEYS):
            m = rx.search(sentence)
            if m:
                covered += len(sentence)
                phrase = phrase or m.group(0)
    if phrase is None:
        return MetricResult("refusal", None)
    share = covered / len(answer)
    if share >= cfg.refusal_boilerplate_share:
        return MetricResult(
            "refusal",
            phrase,
            [Flag("refusal", f"answer is mostly refusal boilerplate: {_pct(share)} is in sentences like '{phrase}'")],
            {"share": share},
        )
    return MetricResult("refusal", None, [], {"phrase_later": phrase, "share": share})


def _refusal_result(text: str, start: int, end: int) -> MetricResult:
    phrase = " ".join(text[start:end].split()).strip(" ,，")
    return MetricResult("refusal", phrase, [Flag("refusal", f"answer refuses: matches '{phrase}'")], {"position": start})


# --- only_punctuation_or_stopwords -----------------------------------------------------------------

# Function words only: answers such as "yes", "no", "not", "all", "none", "是", "不", "对" are content.
_EN_STOP = frozenset(
    _words(
        """
    a an the and or but nor if then so of to in on at by for with from as into onto over under about
    above below between through during before after up down out off is are was were be been being am do
    does did doing have has had having it its it's itself this that these those i me my mine we us our
    ours you your yours he him his she her hers they them their theirs there here what which who whom
    whose when where why how some any such than too very can will just should would could may might must
    shall also only own same other each few more most s t d ll re ve m o etc oh ah um uh well hmm eh
    """
    )
)
_ZH_STOP = sorted(
    _words(
        """
    的 了 着 过 地 得 在 和 与 及 或 而 也 都 就 还 又 把 被 让 给 对于 从 向 于 以 之 其 这 那 这个 那个 这些 那些 这里 那里 我 你 您 他 她 它 我们 你们 他们
    她们 它们 咱们 啊 吧 呢 吗 呀 嘛 哦 噢 嗯 哈 哎 唉 么 等 等等 一个 一些 什么 怎么 怎样 如何 为 为了 因为 所以 但是 但 然而 如果 虽然 并且 而且 以及 即 则 之一
    嗯嗯 哈哈
    """
    ),
    key=len,
    reverse=True,
)
_ZH_STOP_RE = re.compile("|".join(map(re.escape, _ZH_STOP)))


def _content_words(text: str) -> tuple[int, list[str]]:
    """(number of content tokens, first few stop words seen). Stops counting at the first content token."""
    stops: list[str] = []
    for w in _WORD_OR_CJK_RUN.findall(text):
        if _CJK_RUN.search(w):
            for part in _CJK_RUN.split(w):  # latin/digit pieces glued to CJK
                if part and part.lower() not in _EN_STOP:
                    return 1, stops
            for run in _CJK_RUN.findall(w):
                rest = _ZH_STOP_RE.sub("", run)
                if rest:
                    return 1, stops
                stops.extend(_ZH_STOP_RE.findall(run))
        elif w.lower() in _EN_STOP:
            stops.append(w)
        else:
            return 1, stops
    # No word: pictographs (emoji and other "So" symbols) still say something.
    for ch in text:
        if ord(ch) > 0x2000 and unicodedata.category(ch) == "So":
            return 1, stops
    return 0, stops


# Instructions whose right answer may be a function word or a symbol: "fill in the blank", "which
# pronoun", "convert to Morse code", "draw a smiley in ASCII".
_WORD_OR_SYMBOL_TASK = re.compile(
    r"word|blank|fill|complet|missing|pronoun|article|preposition|conjunction|clause|verb|noun|subject|letter|character|string|"
    r"conjugat|tense|spell|rhym|regex|regular expression|punctuat|rewrite|rephrase|reword|rearrange|reverse|translat|insert|"
    r"replace|option|choose|select|pick|correct|grade|categor|classif|question|dialog|phrase|sentence|note|answer|morse|ascii|"
    r"emoticon|smiley|symbol|emoji|redact|_{2,}|"
    r"词|填空|空白|字母|字符|句|主语|正则|摩尔斯|摩斯|符号|标点|表情|选择|选项|改写|重写|翻译|评分|分数|打分|分类|问题|对话|音符|笑脸|答案",
    re.IGNORECASE,
)


def _only_punct(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    """Value: whether the answer has a content word (None for an empty answer). Flagged when it has
    none, unless the instruction is about words or symbols, where "on", "She" or ":-)" can be right."""
    if not s.answer.strip():
        return MetricResult("only_punctuation_or_stopwords", None)
    n, stops = _content_words(s.answer)
    flags = []
    if n == 0 and not _WORD_OR_SYMBOL_TASK.search(s.instruction):
        if stops:
            shown = ", ".join(f"'{w}'" for w in dict.fromkeys(stops[:5]))
            reason = f"answer has no content words, only stop words ({shown})"
        else:
            reason = f"answer has no content words, only punctuation or symbols: '{_head(s.answer)}'"
        flags.append(Flag("only_punctuation_or_stopwords", reason))
    return MetricResult("only_punctuation_or_stopwords", n > 0, flags)


# --- repetition ------------------------------------------------------------------------------------


def repeated_ngram_ratio(items: str | list[str], n: int) -> float:
    """Share of n-gram occurrences that repeat an earlier n-gram: ``(total - distinct) / total`` over
    the ``len(items) - n + 1`` overlapping n-grams of a string (character n-grams) or of a list of
    words (word n-grams). 0.0 when there are no n-grams; a text made of one n-gram repeated k times
    tends to (k - 1) / k. This is the duplicate n-gram measure of Gopher (Rae et al., 2021) and
    Data-Juicer's repetition filters, counted over occurrences rather than characters."""
    total = len(items) - n + 1
    if total <= 0:
        return 0.0
    if isinstance(items, str):
        distinct = len({items[i : i + n] for i in range(total)})
    else:
        distinct = len(set(zip(*(items[i:] for i in range(n)), strict=False)))
    return (total - distinct) / total


_NON_WORD_RUN = re.compile(r"[\W_]+")
_LETTER_WORD = re.compile(rf"[^\W\d_{_CJK}]{{2,}}")  # runs of 2+ non-CJK letters
# Instructions that ask for repetition.
_REPEAT_TASK = re.compile(r"repeat|echo|重复|复述", re.IGNORECASE)


def _repetition(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    """Value: the larger of the character and word repeated n-gram ratios (see repeated_ngram_ratio)
    of the answer's prose: fenced code blocks and lines that look like code, markup, table rows or
    regexes are left out (they repeat by design). Characters: the lower-cased answer with
    every run of non-letters/digits (spaces, punctuation, symbols) made one space, so ASCII tables
    and rules do not count. Words: runs of two or more non-CJK letters, lower-cased, so Chinese
    (no spaces), numbers, musical notes and T/F tables make no word n-grams."""
    text = s.answer[: cfg.repetition_max_chars]
    if "&" in text:
        text = html.unescape(text)  # "&lt;div&gt;" would make words of "lt" and "gt"
    prose = _prose(text)
    if len(prose) < 0.3 * len(text):
        return MetricResult("repetition", 0.0, [], {"skipped": "mostly code or tables"})
    low = prose.lower()
    chars = _NON_WORD_RUN.sub(" ", low).strip()
    words = [w for w in chars.split() if len(w) > 1 and w.isalpha()] if low.isascii() else _LETTER_WORD.findall(low)
    char_total = len(chars) - cfg.char_ngram + 1
    word_total = len(words) - cfg.word_ngram + 1
    char_ratio = repeated_ngram_ratio(chars, cfg.char_ngram) if char_total >= cfg.min_ngrams else 0.0
    word_ratio = repeated_ngram_ratio(words, cfg.word_ngram) if word_total >= cfg.min_ngrams else 0.0
    details = {"char": char_ratio, "word": word_ratio}
    if _REPEAT_TASK.search(s.instruction):
        return MetricResult("repetition", max(char_ratio, word_ratio), [], {**details, "skipped": "instruction asks to repeat"})
    over = []
    if word_ratio > cfg.max_word_repetition:
        over.append(f"{_pct(word_ratio)} of the answer's word {cfg.word_ngram}-grams are repeats (limit {_pct(cfg.max_word_repetition)})")
    if char_ratio > cfg.max_char_repetition:
        over.append(
            f"{_pct(char_ratio)} of the answer's character {cfg.char_ngram}-grams are repeats (limit {_pct(cfg.max_char_repetition)})"
        )
    flags = [Flag("repetition", "; ".join(over))] if over else []
    return MetricResult("repetition", max(char_ratio, word_ratio), flags, details)


# --- garbage_characters ----------------------------------------------------------------------------


_KINDS = {"Cc": "control", "Co": "private use", "Cs": "surrogate", "Cn": "unassigned", "Mn": "mark", "Mc": "mark", "Me": "mark"}
# Variation selectors and the keycap mark dress emoji; they are not garbage.
_EMOJI_MARKS = frozenset([0x20E3, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)])


@lru_cache(maxsize=4096)
def _kind(ch: str) -> str | None:
    """'control', 'private use', 'surrogate', 'unassigned', 'replacement', 'mark' or None (ordinary)."""
    if ch == "\ufffd":
        return "replacement"
    if ch in "\t\n\r" or ord(ch) in _EMOJI_MARKS:
        return None
    return _KINDS.get(unicodedata.category(ch))


@lru_cache(maxsize=1)
def _suspect_re() -> re.Pattern[str]:
    """Runs of candidate special characters: the BMP ones in one class (which re compiles to a
    bitmap, so it is fast) and any astral character (judged one by one; mostly emoji, which pass).
    Built once from unicodedata on first use (well under a second)."""
    parts = []
    start = None
    for cp in range(0x10000):
        bad = _kind(chr(cp)) is not None if cp >= 0x80 else ((cp < 0x20 and cp not in (9, 10, 13)) or cp == 0x7F)
        if bad and start is None:
            start = cp
        elif not bad and start is not None:
            parts.append(f"\\u{start:04x}-\\u{cp - 1:04x}" if cp - 1 > start else f"\\u{start:04x}")
            start = None
    if start is not None:
        parts.append(f"\\u{start:04x}-\\uffff")
    _kind.cache_clear()
    return re.compile("(?:[" + "".join(parts) + "]|[\\U00010000-\\U0010ffff])+")


_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def garbage_characters(text: str) -> tuple[int, dict[str, int]]:
    """Number of special characters in text and a count by kind. Special: control characters other
    than tab, newline and carriage return; private-use, surrogate and unassigned code points; the
    replacement character U+FFFD; and combining marks that are stacked three or more deep (as in
    "Zalgo" text) or that follow no letter (a mark after a space, a digit or the start). Single marks
    on a letter are ordinary writing (Thai, Hindi, decomposed accents) and are not counted, nor are
    emoji variation selectors and the keycap mark."""
    if text.isascii() and not _ASCII_CONTROL.search(text):
        return 0, {}
    kinds: dict[str, int] = {}
    n = 0
    for m in _suspect_re().finditer(text):
        prev = text[m.start() - 1] if m.start() else ""
        marks = 0
        for ch in m.group(0) + " ":  # the sentinel closes a trailing run of marks
            kind = _kind(ch)
            if kind == "mark":
                marks += 1
                continue
            if marks:
                if marks >= 3 or not prev.isalpha():
                    n += marks
                    kinds["combining mark"] = kinds.get("combining mark", 0) + marks
                marks = 0
            if kind is not None:
                kinds[kind] = kinds.get(kind, 0) + 1
                n += 1
            prev = ch
    return n, kinds


def _garbage(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    flags = []
    worst = 0.0
    details = {}
    for where, text in (("answer", s.answer), ("instruction", s.user_text)):
        if not text:
            continue
        n, kinds = garbage_characters(text)
        if not n:
            continue
        share = n / len(text)
        details[where] = {"count": n, "share": share, "kinds": kinds}
        worst = max(worst, share)
        if share > cfg.max_garbage_ratio:
            what = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
            flags.append(
                Flag(
                    "garbage_characters",
                    f"{_pct(share)} of the {where}'s characters are special ({what}) (limit {_pct(cfg.max_garbage_ratio)})",
                )
            )
    return MetricResult("garbage_characters", worst, flags, details)


# --- truncated_answer ------------------------------------------------------------------------------

# Words that cannot end an English sentence: articles, conjunctions, prepositions that need an object,
# possessive determiners. Particles, auxiliaries and stranded prepositions ("turn it on", "yes, it
# is", "who to connect with") can.
_EN_CONNECTORS = frozenset(
    _words(
        """
    and or but nor the a an of to into onto because although whereas unless than such including between
    among via per its their our your my whose whether if while
    """
    )
)
# Chinese connectives that cannot end a sentence. 的 and 是 are left out ("消极的", "是的" end
# answers), and single characters that also end words (温和, 参与, 随从, 方向) are guarded or left out.
_ZH_CONNECTOR_END = re.compile(
    r"(?:以及|并且|而且|但是|因为|所以|然后|或者|例如|比如|包括|如果|虽然|以便|(?<![温总平缓柔调祥谐暖饱])和|(?<![参给赋授])与|或)$"
)
# A last character that closes a sentence, a quotation or a bracket, or is a list/emphasis mark.
_TERMINAL = set(".!?。！？…;；'\"”’」』》〉)]}）】>*~`|")
_TRAILING_COMMA = set(",，、")
_OPEN_CLOSE = (("(", ")"), ("[", "]"), ("{", "}"), ("（", "）"), ("【", "】"), ("《", "》"))
_LAST_WORD = re.compile(r"(?<!\w)([^\W\d_]+)\W*$")
# The last clause: what follows the last sentence end or line break ("Sincerely," "最好的，").
_LAST_CLAUSE = re.compile(r"[^.!?。！？\n]*$")
_URLISH = re.compile(r"(?:https?://|www\.)\S+$|\S+@\S+\.\w+$|\S+\.(?:com|org|net|io|py|js|html|txt|pdf|png|jpg)$", re.IGNORECASE)


def _few_words(text: str) -> bool:
    """A single word or number (or two) is a complete answer, whatever it ends with."""
    return _letter_tokens(text[-400:]) < 3


def _truncation(answer: str) -> tuple[str, str] | None:
    """(kind, reason) when the answer looks cut off, else None. Cut: an odd number of ``` fences; a
    last line with an unclosed bracket; a trailing comma after a clause of five or more words (a
    shorter one is a salutation or a letter's closing: "Dear Dr. Smith,", "Sincerely,"); a last word
    that cannot end a sentence ("and", "the", "of", "以及", "和") on a line of six or more words (ten
    or more CJK characters). Not cut: a closed code block, an answer of one or two words or numbers,
    a last character that closes a sentence, quotation or bracket, an emoji or symbol, a URL, a line
    of code. An answer that simply lacks its final full stop is not flagged."""
    a = answer.rstrip()
    if not a:
        return None
    tail = _tail(a)
    if a.count("```") % 2:
        return "unclosed_code_block", f"answer ends inside an unclosed code block: '{tail}'"
    if a.endswith("```"):
        return None
    last = a[-1]
    if last in _TERMINAL and last not in ")]}）】》":
        return None
    last_line = a.rsplit("\n", 1)[-1].strip()
    if last not in ".!?。！？" and (" " in last_line or _CJK_RUN.search(last_line)):
        for o, c in _OPEN_CLOSE:
            i = last_line.rfind(o)
            if i >= 0 and last_line.count(o) > last_line.count(c) and _letter_tokens(last_line[i:]) >= 2 and not _few_words(a):
                return "unbalanced_bracket", f"answer ends with an unclosed '{o}': '{tail}'"
    if last in _TERMINAL:
        return None
    if _URLISH.search(last_line) or _is_structured(last_line):
        return None
    if last in _TRAILING_COMMA:
        clause = _LAST_CLAUSE.search(a[-300:]).group(0)
        if (len(clause.split()) >= 5 or sum(map(len, _CJK_RUN.findall(clause))) >= 10) and not _few_words(a):
            return "trailing_comma", f"answer ends mid-sentence, on '{last}': '{tail}'"
        return None
    if _CJK_RUN.match(last):
        if _ZH_CONNECTOR_END.search(last_line) and sum(map(len, _CJK_RUN.findall(last_line))) >= 10 and not _few_words(a):
            return "connector", f"answer ends mid-sentence: '{tail}'"
        return None
    m = _LAST_WORD.search(last_line)
    if not m or m.end(1) != len(last_line):  # ends with a digit, symbol or emoji
        return None
    word = m.group(1)
    words = last_line.split()
    if word in _EN_CONNECTORS and len(words) >= 6 and not _few_words(a):  # lower case only: "Company A", "Plan B" are names
        return "connector", f"answer ends mid-sentence: '{tail}'"
    return None


def _truncated(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    t = _truncation(s.answer)
    if t is None:
        return MetricResult("truncated_answer", None)
    kind, reason = t
    return MetricResult("truncated_answer", kind, [Flag("truncated_answer", reason)], {"tail": s.answer.rstrip()[-40:]})


# --- unseeable_input -------------------------------------------------------------------------------

_URL_ONLY = re.compile(r"\s*[<(\[]?((?:https?|ftp)://\S+|www\.\S+\.\S+)[>)\]]?\s*", re.IGNORECASE)
_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+\.\S+", re.IGNORECASE)
# The instruction works on the URL's text itself, not on what it points at.
_URL_AS_TEXT = re.compile(
    r"\b(?:shorten|domain|protocol|scheme|valid|parse|extract|encode|decode|format|hostname|query string|path|"
    r"top[- ]level|subdomain|https?|secure|phishing|malicious|safe|spam|rewrite|convert|edit|split|components?|html|hyperlink|"
    r"anchor|qr|markdown|create a link)\b|的域|域名|子域|协议|缩短|短链接|解析|合法|有效|格式|提取|安全|钓鱼|超链接|创建[^。\n]{0,12}链接",
    re.IGNORECASE,
)
_VISUAL = r"(?:image|picture|photo|photograph|pic|screenshot|diagram|chart|graph|figure|illustration|drawing|painting|video|clip|audio|recording|sound clip|gif|infographic)"
_FILE = r"(?:file|attachment|document|pdf|spreadsheet|link|url|website|web ?page|webpage|site)"
_UNSEEABLE = re.compile(
    "|".join(
        [
            rf"\b(?:in|on|from|at)\s+(?:the|this|these|that)\s+(?:(?:attached|following|given|provided|above|below|accompanying|enclosed|uploaded|shown|linked)\s+)?{_VISUAL}s?\b(?!\s+(?:of|that you|you)\b)",
            rf"\b(?:this|these|the\s+(?:following|given|provided|attached|above|below|accompanying|enclosed|uploaded|shown|linked|referenced))\s+(?:{_VISUAL}|{_FILE})s?\b",
            rf"\b(?:{_VISUAL}|{_FILE})s?\s+(?:below|above|attached|provided|shown\s+(?:below|above|here))\b",
            rf"\b(?:for|describe|caption|analy[sz]e)\s+(?:the|this)\s+{_VISUAL}s?\s*(?=[.?!:,]|$)",
            r"\b(?:the|see|see the)\s+attach(?:ed|ment)\b",
            r"\b(?:click|follow|open|visit)\s+(?:on\s+)?(?:the|this)\s+(?:link|url)\b",
            r"\b(?:watch|listen to)\s+(?:the|this)\s+(?:video|audio|clip|recording|song|podcast)\b",
            r"\b(?:shown|depicted|pictured|illustrated)\s+(?:in|on)\s+(?:the|this)\s+" + _VISUAL + r"\b",
            r"看(?:一下|看)?(?:这|那|下面的?|以下的?|上面的?)(?:张|幅|个|段)?(?:图片?(?![案书纸章腾标谋形])|照片|视频|图表|截图|链接)",
            r"(?:这|那|该)(?:张|幅)(?:图片?(?![案书纸章腾标谋形])|照片|画|截图|图表)",
            r"(?:这|那|该)(?:个|段)?(?:视频|音频|录音|链接|网址|附件|文件|截图)",
            r"(?:下面|以下|下方|上面|上方|如下|附上)的?(?:图片?(?![案书纸章腾标谋形])|照片|视频|音频|录音|链接|网址|附件|文件|图表|截图|表格图)",
            r"(?:见|查看|参见|参考|所附|随附|附上的?)(?:附件|附图|附表)|附件中|附图",
            r"如(?:下|上)?图(?:所示)?(?![案书纸章腾标谋形])",
            r"(?:这|该|此|那|提供的|给定的|给出的|所给的?|附上的|下面的?|上面的?|以下的?|如下的?)(?:张|幅|个|段)?(?:图片?|图表|照片|视频|音频|录音)中",
            r"点击(?:这个|该|下面的?)?链接",
            r"(?:下|上)图(?![案书纸章腾标谋形])",
        ]
    ),
    re.IGNORECASE,
)
# Every _UNSEEABLE pattern contains one of these (lower-cased); most instructions contain none.
_UNSEEABLE_KEYS = (
    "image", "pic", "photo", "screenshot", "diagram", "chart", "graph", "figure", "illustrat", "drawing", "painting", "video", "clip",
    "audio", "recording", "gif", "infographic", "file", "attach", "document", "pdf", "spreadsheet", "link", "url", "web", "site",
    "slide", "presentation", "song", "podcast", "图", "照片", "画", "视频", "音频", "录音", "链接", "网址", "附件", "文件", "附表",
)  # fmt: skip
_AFTER_REFERENCE = re.compile(r"[^.?!:：。？！\n]*[.?!:：。？！\n]?")
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
# A whole input that is a bracketed stand-in: "[Image]", "<Photo>", "(a photo of a grocery store)".
_BRACKETED = re.compile(r"\s*[\[<(（【「{][^\n\[\]<>(){}（）【】「」]{0,80}[\]>)）】」}]\s*")
_VISUAL_WORD = re.compile(
    r"image|picture|photo|figure|painting|drawing|chart|graph|diagram|video|audio|file|attach|图|照片|画|视频|音频|录音|附件|文件",
    re.IGNORECASE,
)
# A quoted title or an attribution names the thing ("the painting 'The Persistence of Memory'",
# "Painting: The Starry Night by Vincent van Gogh", "《星夜》这幅画").
_NAMED = re.compile(r"[\"“《「『][^\"”》」』\n]{2,80}[\"”》」』]|\bby [A-Z][a-z]+ [A-Z]")
# The whole input is an image: a Markdown image or an <img> tag.
_IMAGE_ONLY = re.compile(r"\s*(?:!\[[^\]\n]*\]\(([^)\s]+)[^)\n]*\)|<img\b[^>]*?src=[\"']?([^\"'\s>]+)[^>]*>)\s*", re.IGNORECASE)
_COLON = re.compile(r"[:：]")
_ALNUM_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def _has_content(text: str) -> bool:
    """Whether text holds the thing itself rather than a stand-in for it: something left after
    URLs and Markdown images are removed that is not a placeholder, not a bracketed stand-in
    ("[Image]", "<Photo>") and not a short mention of a picture or file ("附上照片", "Photo of a cat")."""
    if "&" in text:
        text = html.unescape(text)
    text = _URL.sub(" ", _MD_IMAGE.sub(" ", text)).strip()
    if not text or _placeholder_of(text) is not None or _BRACKETED.fullmatch(text):
        return False
    n = len(_ALNUM_TOKEN.findall(text[:200]))
    return n >= 12 or (n >= 1 and not _VISUAL_WORD.search(text))


def _unseeable(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    """An input (or whole instruction) that is only a URL, unless the instruction works on the URL's
    text (its domain, a short link, an HTML link); or an instruction that refers to an image, file,
    attachment, link, video, audio or chart ("the image below", "this link", "附件", "如图所示") when
    the text does not hold that thing: nothing follows the referring sentence or fills the input but
    URLs, Markdown images, placeholders or stand-ins like "[Image]". A thing named by a quoted title
    or an attribution ("the painting "Guernica"", "The Starry Night by Vincent van Gogh", "《星夜》
    这幅画") counts as given. An input that is only a Markdown image or <img> tag is flagged too."""
    instr = s.instruction.strip()
    if not instr:
        return MetricResult("unseeable_input", None)
    if s.input_part is not None:
        m = _URL_ONLY.fullmatch(s.input_part)
        if m:
            if _URL_AS_TEXT.search(s.instruction_part):
                return MetricResult("unseeable_input", None, [], {"skipped": "the instruction works on the URL's text"})
            url = m.group(1)
            return MetricResult(
                "unseeable_input", url, [Flag("unseeable_input", f"input is only a URL ({_head(url, 80)}): the model cannot open it")]
            )
        m = _IMAGE_ONLY.fullmatch(s.input_part)
        if m:
            url = m.group(1) or m.group(2)
            return MetricResult(
                "unseeable_input", url, [Flag("unseeable_input", f"input is only an image ({_head(url, 80)}): the model cannot see it")]
            )
    else:
        m = _URL_ONLY.fullmatch(instr)
        if m:
            url = m.group(1)
            return MetricResult(
                "unseeable_input", url, [Flag("unseeable_input", f"instruction is only a URL ({_head(url, 80)}): the model cannot open it")]
            )
    low = instr.lower()
    if not any(k in low for k in _UNSEEABLE_KEYS) or _NAMED.search(instr):
        return MetricResult("unseeable_input", None)
    split = len(s.instruction_part) if s.input_part is not None else len(instr)
    colon = _COLON.search(instr, 0, split)
    for m in _UNSEEABLE.finditer(instr):
        # In the input, or in material after a colon ("Make it passive: She created this document."):
        # the reference is part of the text given, and the rest of it may hold the thing.
        if m.start() >= split or (colon and colon.end() <= m.start()):
            start = split if m.start() >= split else colon.end()
            rest = instr[start : m.start()] + " " + instr[m.end() :]
        elif s.input_part is not None:
            rest = s.input_part
        else:
            rest = instr[_AFTER_REFERENCE.match(instr, m.end()).end() :]
        if _has_content(rest):
            continue
        # "the text above": a paragraph before the one with the reference.
        before = instr[: m.start()]
        if "\n" in before.strip() and _has_content(before.rsplit("\n", 1)[0]):
            continue
        phrase = " ".join(m.group(0).split())
        where = "input" if m.start() >= split else "instruction"
        return MetricResult(
            "unseeable_input",
            phrase,
            [Flag("unseeable_input", f"{where} refers to something the model cannot see: '{phrase}', and it is not in the text")],
        )
    return MetricResult("unseeable_input", None)


# --- copies_instruction ----------------------------------------------------------------------------

_EDGE_PUNCT = " .!?。！？\"'“”‘’:："


def _copy_key(text: str, cap: int) -> str:
    return normalize_text(text[: cap * 2])[:cap].strip(_EDGE_PUNCT)


# Tasks whose answer may rightly be the input as given: pick, identify, read out, print.
_SELECTION_TASK = re.compile(
    r"\b(?:identify|select|choose|pick|which|extract|find|quote|copy|repeat|read|print|output|type|transcribe|name|match)\b|"
    r"识别|选择|选出|挑选|哪|提取|找出|复制|重复|朗读|读|输出|打印|转录|配对|匹配",
    re.IGNORECASE,
)
_ZH_STOP_SET = frozenset(_ZH_STOP)
# Words a restatement adds around the question's own words ("Name a sport that ..." -> "Rugby is a
# sport that ..."); anything else, a pronoun or a single letter included, is new content.
_RESTATEMENT_GLUE = frozenset(
    _words(
        """
    the an is are was were be been of to in on for and or it its this that these those there here as by
    with i we you my our your has have had will would can could do does did not
    """
    )
)


def _new_content(answer_tokens: list[str], instruction_tokens: list[str]) -> bool:
    """Whether the answer has a content token (not a stop word or punctuation) that the instruction
    does not have as often: "Nepal is a nation in Asia that is landlocked." adds "nepal"."""
    extra = Counter(answer_tokens)
    extra.subtract(instruction_tokens)
    return any(n > 0 and _CONTENT_CHAR.match(t) and t not in _RESTATEMENT_GLUE and t not in _ZH_STOP_SET for t, n in extra.items())


def _copies(s: _Sample, cfg: CleaningConfig) -> MetricResult:
    """Value: similarity of the answer and the instruction part (before the input) in [0, 1]:
    difflib's SequenceMatcher ratio over their lower-cased tokens (see count_tokens: CJK characters,
    words, symbols) after NFKC and whitespace collapsing, each cut to copy_max_chars. Cheaper upper
    bounds (length ratio, multiset overlap) stand in for it when they are already under the
    threshold (details["upper_bound"]).

    Flagged: an answer equal to the instruction (NFKC, whitespace and edge punctuation aside);
    equal to the input, unless the task is to pick, identify or print something; found whole in the
    instruction part and at least copy_contained_share of it, unless the task is to pick or quote;
    or at least copy_similarity similar to the instruction part while adding no content word of its
    own ("The median of {4, 10, 8} is 8." restates the question and is fine). An answer close to the
    input is a transformation (an edit, a sorted list) and is left alone."""
    cap = cfg.copy_max_chars
    la0, lq0 = len(s.answer), len(s.instruction)
    if la0 > 2 * lq0 + 100:  # far longer than the whole instruction: no copy is possible
        return MetricResult("copies_instruction", 2 * lq0 / (la0 + lq0), [], {"upper_bound": True})
    a = _copy_key(s.answer, cap)
    q = _copy_key(s.instruction_part, cap)
    if not a or not q:
        return MetricResult("copies_instruction", 0.0)
    if a == q or (s.input_part is not None and a == _copy_key(s.instruction, cap)):
        return MetricResult("copies_instruction", 1.0, [Flag("copies_instruction", "answer repeats the instruction verbatim")])
    if (
        s.input_part is not None
        and normalize_text(s.answer) == normalize_text(s.input_part)
        and _letter_tokens(a) >= 3
        and not _SELECTION_TASK.search(s.instruction_part)
    ):
        return MetricResult(
            "copies_instruction",
            1.0,
            [Flag("copies_instruction", f"answer repeats the input unchanged: '{_head(s.answer)}'")],
            {"part": "input"},
        )
    la, lq = len(a), len(q)
    if la >= cfg.copy_contained_min_chars and la >= cfg.copy_contained_share * lq and a in q and not _SELECTION_TASK.search(q):
        share = la / lq
        return MetricResult(
            "copies_instruction",
            share,
            [
                Flag(
                    "copies_instruction",
                    f"answer is copied from the instruction: all of it appears there ({_pct(share)} of the instruction)",
                )
            ],
            {"contained": True},
        )
    ta, tq = _TOKEN.findall(a.lower()), _TOKEN.findall(q.lower())
    bound = 2 * min(len(ta), len(tq)) / (len(ta) + len(tq))
    if bound < cfg.copy_similarity:
        return MetricResult("copies_instruction", bound, [], {"upper_bound": True})
    sm = SequenceMatcher(None, ta, tq, autojunk=False)
    quick = sm.quick_ratio()
    if quick < cfg.copy_similarity:
        return MetricResult("copies_instruction", quick, [], {"upper_bound": True})
    ratio = sm.ratio()
    flags = []
    if ratio >= cfg.copy_similarity and not _new_content(ta, tq):
        flags.append(
            Flag(
                "copies_instruction",
                f"answer is {_pct(ratio)} similar to the instruction (limit {_pct(cfg.copy_similarity)}): '{_head(s.answer)}'",
            )
        )
    return MetricResult("copies_instruction", ratio, flags)


# --- wrong_language --------------------------------------------------------------------------------

_LANGUAGE_NAMES = {
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "ru": "Russian",
    "ar": "Arabic",
    "en": "English",
    "other": "a Latin-script language other than English",
}
# Instructions that ask for another language: translation, or any language named.
# Translation tasks: the answer is in another language by design.
_TRANSLATION_TASK = re.compile(r"translat|interpret|翻译|译成|译为|翻成|英译|中译|汉译|译文", re.IGNORECASE)
# Languages an instruction may ask for ("in English", "into Chinese", "用英文", "西班牙语的"), by the
# group detect_language puts them in: Latin-script languages all count as "en" (it cannot tell them
# apart reliably).
_LANGUAGE_GROUPS = {
    "en": r"english|spanish|french|german|italian|portuguese|latin|dutch|swedish|turkish|vietnamese|polish|pinyin|"
    r"英文|英语|西班牙语|西语|法语|法文|德语|德文|意大利语|葡萄牙语|拉丁语|拼音|越南语",
    "zh": r"chinese|mandarin|cantonese|中文|汉语|普通话|粤语|文言文",
    "ja": r"japanese|日语|日文",
    "ko": r"korean|韩语|韩文",
    "ru": r"russian|俄语|俄文",
    "ar": r"arabic|阿拉伯语",
}
_NAMED_LANGUAGE = {
    code: re.compile(
        rf"\b(?:in|into|to|from|using)\s+(?:{names})\b|\b(?:{names})\s+(?:word|phrase|sentence|version|equivalent|name|term|idiom|"
        rf"proverb|saying|greeting)|(?:用|以|成|为|使用)(?:{names})|(?:{names})(?:单词|词|短语|句子|名字|名称|怎么说|说法|版本|表达|的)",
        re.IGNORECASE,
    )
    for code, names in _LANGUAGE_GROUPS.items()
}
# English function words (two letters or more, so musical notes and grades do not count).
_EN_FUNCTION = frozenset(
    _words(
        """
    the of to and in is are was were be for on with that this it as by from at or not an can will has
    have you your we our they their he she his her which what how why who when there these those been
    would should could may into than also its
    """
    )
)
# A run of text in a script: three Latin words, four CJK characters, three Cyrillic or Arabic words.
_SCRIPT_RUN = {
    "en": re.compile(r"[A-Za-z]{2,}(?:[\s,'’-]+[A-Za-z]{2,}){2,}"),
    "zh": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]{4,}"),
    "ja": re.compile(r"[\u3040-\u30ff]{3,}"),
    "ko": re.compile(r"[\uac00-\ud7af]{3,}"),
    "ru": re.compile(r"[\u0400-\u04ff]{2,}(?:\s+[\u0400-\u04ff]{2,}){2,}"),
    "ar": re.compile(r"[\u0600-\u06ff]{2,}(?:\s+[\u0600-\u06ff]{2,}){2,}"),
}


def _language_text(text: str) -> str:
    """The head of text (what detect_language reads) without code blocks, URLs, Markdown images and
    HTML escapes: what is left to judge."""
    text = text[:2000]
    if "&" in text:
        text = html.unescape(text)
    if "```" in text:
        text = _FENCE_BLOCK.sub(" ", text)
    if "![" in text:
        text = _MD_IMAGE.sub(" ", text)
    if "://" in text or "www." in text or "WWW." in text:
        text = _URL.sub(" ", text)
    return text


def _wrong_language(s: _Sample, task_type: str, cfg: CleaningConfig) -> MetricResult:
    """Value: the answer's language (detect_language), or None when not judged. Flagged when it
    differs from the instruction part's language. Not judged: translation tasks (task_type or
    instruction: "translate", "翻译", "译成"); an instruction that asks for the answer's language ("in
    English", "用英文", "into Chinese", "西班牙语的"; asking for Chinese and getting English is flagged);
    either side under language_min_tokens letter tokens or mostly code (code blocks, URLs and
    Markdown images are set aside first); a Latin-script answer that is not English prose (fewer
    than two English function words: names, notes, codes, or another Latin language, which
    detect_language cannot tell from English reliably); an answer whose language also appears in the
    instruction or input as a run of text (three words, four CJK characters): it may be working on
    that text ("改写下面的句子：The cat sat."); and an answer that also holds such a run in the
    instruction's language (Chinese sentences around English names and titles)."""
    if _TRANSLATION_TASK.search(task_type):
        return MetricResult("wrong_language", None, [], {"skipped": "translation task"})
    instr = s.instruction
    answer = _language_text(s.answer)
    n = cfg.language_min_tokens
    if _letter_tokens(answer[: n * 20]) < n or _letter_tokens(s.instruction_part[: n * 20]) < n:
        return MetricResult("wrong_language", None, [], {"skipped": "too short"})
    a_lang = detect_language(answer)
    i_lang = detect_language(_language_text(s.instruction_part))
    if not a_lang or not i_lang:
        return MetricResult("wrong_language", None, [], {"skipped": "no letters"})
    details = {"answer": a_lang, "instruction": i_lang}
    latin = ("en", "other")
    if a_lang == i_lang or (a_lang in latin and i_lang in latin):
        return MetricResult("wrong_language", a_lang, [], details)
    if _code_share(s.answer) >= cfg.language_code_share or _code_share(instr) >= cfg.language_code_share:
        return MetricResult("wrong_language", None, [], {**details, "skipped": "mostly code"})
    if a_lang in latin:
        words = _WORD.findall(answer[:1000].lower())
        if sum(w in _EN_FUNCTION for w in words) < 2:
            return MetricResult("wrong_language", None, [], {**details, "skipped": "not English prose"})
        a_lang = details["answer"] = "en"
    run = _SCRIPT_RUN.get(a_lang)
    if run and run.search(_language_text(instr)):
        return MetricResult("wrong_language", a_lang, [], {**details, "skipped": "the instruction holds text in the answer's language"})
    run = _SCRIPT_RUN.get("en" if i_lang == "other" else i_lang)
    if run and run.search(answer):
        return MetricResult(
            "wrong_language", a_lang, [], {**details, "skipped": "the answer also holds text in the instruction's language"}
        )
    if _TRANSLATION_TASK.search(instr):
        return MetricResult("wrong_language", a_lang, [], {**details, "skipped": "translation"})
    if _NAMED_LANGUAGE[a_lang].search(instr):
        return MetricResult("wrong_language", a_lang, [], {**details, "skipped": "the instruction asks for the answer's language"})
    return MetricResult(
        "wrong_language",
        a_lang,
        [Flag("wrong_language", f"answer is in {_LANGUAGE_NAMES[a_lang]} but the instruction is in {_LANGUAGE_NAMES[i_lang]}")],
        details,
    )


# --- entry points ----------------------------------------------------------------------------------


def clean_sample(messages: list[dict], *, task_type: str = "", config: CleaningConfig | None = None) -> list[MetricResult]:
    """Run every cleaning rule on one conversation; one MetricResult per rule, in the order of RULES.

    Values: empty_answer bool; placeholder the placeholder text or None; answer_length tokens;
    refusal the matched phrase or None; only_punctuation_or_stopwords whether there is a content
    word (None for an empty answer); repetition the larger repeated n-gram ratio; garbage_characters
    the larger special-character share; truncated_answer the kind of cut or None; unseeable_input the
    URL or phrase or None; copies_instruction a similarity in [0, 1] (an upper bound when
    details["upper_bound"]); wrong_language the answer's language or None when not judged."""
    cfg = config or _DEFAULT
    s = _sample(messages)
    return [
        _empty_answer(s, cfg),
        _placeholder(s, cfg),
        _answer_length(s, cfg),
        _refusal(s, cfg),
        _only_punct(s, cfg),
        _repetition(s, cfg),
        _garbage(s, cfg),
        _truncated(s, cfg),
        _unseeable(s, cfg),
        _copies(s, cfg),
        _wrong_language(s, task_type, cfg),
    ]


def cleaning_flags(messages: list[dict], *, task_type: str = "", config: CleaningConfig | None = None) -> list[Flag]:
    """The flags of :func:`clean_sample`, in rule order."""
    return [f for r in clean_sample(messages, task_type=task_type, config=config) for f in r.flags]
