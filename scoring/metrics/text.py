"""Text helpers shared by import and metrics: normalization, content hashing, language by script.

Pure Python; no Django."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping


def normalize_text(text: str) -> str:
    """NFKC, whitespace runs collapsed to one space, trimmed. Case is kept: 'Yes' and 'yes' differ."""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split())


def normalize_label(text: str) -> str:
    """A category name as a stable key: normalized, lower-case (so 'open\u00a0qa' == 'Open QA')."""
    return normalize_text(text).lower()


def content_hash(messages: Iterable[Mapping[str, str]]) -> str:
    """sha256 of the normalized (role, content) pairs: equal for conversations that differ only in
    Unicode form or whitespace."""
    # Unit and record separators cannot survive normalization inside the content, so the joined
    # string is unambiguous.
    joined = "\x1e".join(f"{m['role']}\x1f{normalize_text(m['content'])}" for m in messages)
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


_EN_WORDS = frozenset(
    ["the", "a", "an", "of", "to", "and", "in", "is", "are", "was", "were", "be", "for", "on", "with", "that", "this", "it", "as", "by", "from", "at", "or", "not", "what", "how", "why", "which", "who", "you", "your", "can", "do", "does", "write", "give", "make", "list", "explain", "describe", "find", "create"]
)
_WORD = re.compile(r"[A-Za-z]+")


_SCRIPTS = {
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]"),
    "kana": re.compile(r"[\u3040-\u30ff]"),
    "hangul": re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"),
    "ru": re.compile(r"[\u0400-\u04ff]"),
    "ar": re.compile(r"[\u0600-\u06ff]"),
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f]"),
}


def detect_language(text: str, *, sample_chars: int = 1000) -> str:
    """The language of a text by its script: 'zh', 'ja', 'ko', 'ru', 'ar', 'en', 'other' or '' (no
    letters). Latin-script text is 'en' when it contains English function words, else 'other'.
    Fast (a few regex scans of the first `sample_chars`), so it runs on every imported row."""
    head = text[:sample_chars]
    if head.isascii():
        return _latin_language(head) if _SCRIPTS["latin"].search(head) else ""
    n = {name: len(rx.findall(head)) for name, rx in _SCRIPTS.items()}
    cjk = n["han"] + n["kana"] + n["hangul"]
    # One CJK character carries about as much as a word; weigh it against Latin letters.
    if cjk and cjk * 6 >= n["latin"]:
        if n["kana"] and n["kana"] * 5 >= cjk:
            return "ja"
        if n["hangul"] and n["hangul"] * 2 >= cjk:
            return "ko"
        return "zh"
    best = "ru" if n["ru"] >= n["ar"] else "ar"
    if n[best] > n["latin"]:
        return best
    if n["latin"] == 0:
        return ""
    return _latin_language(head)


def _latin_language(head: str) -> str:
    words = _WORD.findall(head.lower())
    if len(words) <= 3 or not _EN_WORDS.isdisjoint(words):
        return "en"
    return "other"


# Han (with radicals, extensions and compatibility ideographs), kana, bopomofo and Hangul: the
# scripts in which one character carries about one word.
_CJK = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\u1100-\u11ff"
    "\U00020000-\U0003134f"
)
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+|\S")


def count_tokens(text: str) -> int:
    """Tokenizer-free length, the same for every metric that counts tokens: one per CJK character,
    one per run of other letters/digits, one per other non-space character.
    ``count_tokens("Hello, 世界!") == 5``."""
    return len(_TOKEN.findall(text))
