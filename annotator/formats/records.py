"""Record -> conversation: one converter per format, with field checks that name what is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scoring.metrics.text import normalize_label

from .base import FieldError, FileError, Limits
from .readers import _LONE_SURROGATE

SHAREGPT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
    "system": "system",
}
MESSAGE_ROLES = ("system", "user", "assistant")


@dataclass
class Converted:
    messages: list[dict[str, str]]
    task_type: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _type_name(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(type(v), type(v).__name__)


class _Checker:
    def __init__(self, limits: Limits):
        self.limits = limits

    def text(self, value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise FieldError(name, f"must be a string, got {_type_name(value)}")
        if len(value) > self.limits.max_field_chars:
            raise FieldError(name, f"is {len(value):,} characters, over the {self.limits.max_field_chars:,}-character limit")
        if "\x00" in value:
            raise FieldError(name, "contains a NUL character")
        if not value.isascii() and _LONE_SURROGATE.search(value):
            raise FieldError(name, "contains an unpaired surrogate escape (not valid Unicode)")
        return value

    def array(self, obj: dict, name: str) -> list:
        value = obj.get(name)
        if value is None:
            raise FieldError(name, "is missing")
        if not isinstance(value, list):
            raise FieldError(name, f"must be an array, got {_type_name(value)}")
        return value

    def get(self, obj: dict, name: str, *, required: bool, what: str = "") -> str:
        if name not in obj or obj[name] is None:
            if required:
                raise FieldError(name, f"is missing{what}")
            return ""
        return self.text(obj[name], name)


def _task_type(obj: dict, checker: _Checker, *keys: str) -> str:
    for key in keys:
        if obj.get(key) not in (None, ""):
            return normalize_label(checker.text(obj[key], key))[:64]
    return ""


def convert_alpaca(obj: dict, c: _Checker) -> Converted:
    instruction = c.get(obj, "instruction", required=True)
    inp = c.get(obj, "input", required=False)
    output = c.get(obj, "output", required=True, what=": the record has no answer")
    messages: list[dict[str, str]] = []
    system = c.get(obj, "system", required=False)
    if system.strip():
        messages.append({"role": "system", "content": system})
    history = obj.get("history") or []
    if not isinstance(history, list):
        raise FieldError("history", f"must be an array of [instruction, answer] pairs, got {_type_name(history)}")
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise FieldError(f"history[{i}]", "must be an [instruction, answer] pair")
        messages.append({"role": "user", "content": c.text(pair[0], f"history[{i}][0]")})
        messages.append({"role": "assistant", "content": c.text(pair[1], f"history[{i}][1]")})
    user = f"{instruction}\n\n{inp}" if inp.strip() else instruction
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return Converted(messages, _task_type(obj, c, "task_type", "category", "class"))


def convert_sharegpt(obj: dict, c: _Checker) -> Converted:
    turns = c.array(obj, "conversations")
    messages: list[dict[str, str]] = []
    system = c.get(obj, "system", required=False)
    if system.strip():
        messages.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise FieldError(f"conversations[{i}]", f"must be an object, got {_type_name(turn)}")
        speaker_key = "from" if "from" in turn else "role"
        speaker = turn.get(speaker_key)
        if not isinstance(speaker, str):
            raise FieldError(f"conversations[{i}].from", "is missing" if speaker is None else "must be a string")
        role = SHAREGPT_ROLES.get(speaker.strip().lower())
        if role is None:
            raise FieldError(f"conversations[{i}].from", f"unknown speaker {speaker!r} (expected human, gpt or system)")
        value_key = "value" if "value" in turn else "content"
        if turn.get(value_key) is None:
            raise FieldError(f"conversations[{i}].value", "is missing")
        messages.append({"role": role, "content": c.text(turn[value_key], f"conversations[{i}].value")})
    _require_dialogue(messages, "conversations")
    return Converted(messages, _task_type(obj, c, "task_type", "category"))


def _content(value: Any, name: str, c: _Checker) -> str:
    if isinstance(value, list):  # OpenAI content parts: keep the text ones
        parts = []
        for j, part in enumerate(value):
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise FieldError(f"{name}[{j}]", "only text content parts are supported")
            parts.append(c.text(part.get("text"), f"{name}[{j}].text"))
        return "".join(parts)
    if value is None:
        raise FieldError(name, "is missing")
    return c.text(value, name)


def convert_messages(obj: dict, c: _Checker) -> Converted:
    turns = c.array(obj, "messages")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise FieldError(f"messages[{i}]", f"must be an object, got {_type_name(turn)}")
        role = turn.get("role")
        if role not in MESSAGE_ROLES:
            raise FieldError(f"messages[{i}].role", f"must be one of system, user, assistant; got {role!r}")
        messages.append({"role": role, "content": _content(turn.get("content"), f"messages[{i}].content", c)})
    _require_dialogue(messages, "messages")
    return Converted(messages, _task_type(obj, c, "task_type", "category"))


def convert_belle(obj: dict, c: _Checker) -> Converted:
    if "question" in obj:  # BELLE eval: question / std_answer / class
        question = c.get(obj, "question", required=True)
        answer = c.get(obj, "std_answer", required=True, what=": the record has no answer")
        task = _task_type(obj, c, "class", "category", "task_type")
        return Converted([{"role": "user", "content": question}, {"role": "assistant", "content": answer}], task, {"reference_answer": answer})
    instruction = c.get(obj, "instruction", required=True)  # Dolly: instruction / context / response / category
    context = c.get(obj, "context", required=False)
    response = c.get(obj, "response", required=True, what=": the record has no answer")
    user = f"{instruction}\n\n{context}" if context.strip() else instruction
    task = _task_type(obj, c, "category", "class", "task_type")
    return Converted([{"role": "user", "content": user}, {"role": "assistant", "content": response}], task)


CSV_DEFAULT_COLUMNS = {
    "instruction": ("instruction", "prompt", "question", "query"),
    "input": ("input", "context"),
    "output": ("output", "response", "answer", "completion", "std_answer"),
    "system": ("system",),
    "id": ("id",),
    "task_type": ("task_type", "category", "class"),
}


def csv_mapping(header: list[str], mapping: dict[str, str] | None) -> dict[str, str]:
    """Which column feeds which field: the explicit mapping first, else known column names."""
    result: dict[str, str] = {}
    lower = {h.lower(): h for h in header}
    for target, candidates in CSV_DEFAULT_COLUMNS.items():
        if mapping and target in mapping:
            if mapping[target] not in header:
                raise FileError(f"column mapping: {target}={mapping[target]!r} is not a column of the file (columns: {', '.join(header)})", line=1)
            result[target] = mapping[target]
            continue
        for name in candidates:
            if name in lower:
                result[target] = lower[name]
                break
    for target in ("instruction", "output"):
        if target not in result:
            raise FileError(
                f"no column for '{target}': map one with {target}=COLUMN (columns: {', '.join(header)})", line=1
            )
    unknown = set(mapping or {}) - set(CSV_DEFAULT_COLUMNS)
    if unknown:
        raise FileError(f"column mapping names unknown fields: {', '.join(sorted(unknown))} (known: {', '.join(CSV_DEFAULT_COLUMNS)})")
    return result


def _require_dialogue(messages: list[dict[str, str]], name: str) -> None:
    if not any(m["role"] == "user" for m in messages):
        raise FieldError(name, "has no user turn")
    if not any(m["role"] == "assistant" for m in messages):
        raise FieldError(name, "has no assistant turn: the record has no answer")


CONVERTERS: dict[str, Callable[[dict, _Checker], Converted]] = {
    "alpaca": convert_alpaca,
    "sharegpt": convert_sharegpt,
    "messages": convert_messages,
    "belle": convert_belle,
}


def detect_record_format(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    keys = set(obj)
    if "conversations" in keys:
        return "sharegpt"
    if "messages" in keys:
        return "messages"
    if "question" in keys and "std_answer" in keys:
        return "belle"
    if "instruction" in keys and "response" in keys:
        return "belle"
    if "instruction" in keys:
        return "alpaca"
    return None


_RISKY_ESCAPE = re.compile(r"\\u(?:0000|d[89a-f])", re.IGNORECASE)


def _check_strings(value: Any, path: str) -> None:
    """Every string in the record (extra fields too) must be storable: no NUL, no lone surrogate."""
    if isinstance(value, str):
        if "\x00" in value:
            raise FieldError(path or None, "contains a NUL character")
        if _LONE_SURROGATE.search(value) and not _paired(value):
            raise FieldError(path or None, "contains an unpaired surrogate escape (not valid Unicode)")
    elif isinstance(value, dict):
        for k, v in value.items():
            name = k if k.isprintable() else repr(k)[1:-1]
            name = f"{path}.{name}" if path else name
            _check_strings(k, name)
            _check_strings(v, name)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{path}[{i}]")


def _paired(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth_ok(obj: Any, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return True
