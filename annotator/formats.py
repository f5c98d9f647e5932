"""Import formats: stream records out of a file and turn each into a conversation.

Nothing here touches the database. `read_samples` yields `ParsedSample`s or `RecordError`s, one
record at a time, so memory stays flat however large the file is. Every error names where it is:
line (1-based), record (0-based position) and field.

Formats: alpaca (JSON array or JSON Lines of instruction/input/output, optional system, history),
sharegpt (conversations of from/value), messages (OpenAI chat JSON Lines), belle (question/std_answer/
class, or Dolly's instruction/context/response/category), csv (with a column mapping).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from scoring.metrics.text import content_hash, detect_language, normalize_label

FORMATS = ("alpaca", "sharegpt", "messages", "belle", "csv")
FORMAT_CHOICES = ("auto", *FORMATS)


@dataclass(frozen=True)
class Limits:
    max_record_bytes: int = 64 * 1024 * 1024
    max_field_chars: int = 1_000_000
    max_depth: int = 64


@dataclass
class RecordError:
    message: str
    line: int | None = None
    record: int | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "record": self.record, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        return format_error(self.as_dict())


def format_error(err: dict[str, Any]) -> str:
    where = []
    if err.get("line") is not None:
        where.append(f"line {err['line']}")
    if err.get("record") is not None:
        where.append(f"record {err['record']}")
    if err.get("field"):
        where.append(f"field '{err['field']}'")
    return f"{', '.join(where)}: {err['message']}" if where else err["message"]


class FileError(Exception):
    """The file as a whole cannot be read: empty, unknown format, not a JSON array, ..."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message)
        self.error = RecordError(message, line=line)


class FieldError(Exception):
    def __init__(self, field_name: str | None, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(slots=True)
class ParsedSample:
    external_id: str
    messages: list[dict[str, str]]
    source: dict[str, Any]
    task_type: str
    language: str
    meta: dict[str, Any]
    content_hash: str
    text: str
    line: int | None = None
    source_json: str | None = None  # `source` as JSON text, when the file already had it


@dataclass
class RawRecord:
    obj: Any
    line: int
    record: int
    raw: str | None = None  # the record's JSON text as it was in the file


# --------------------------------------------------------------------------------------------
# Readers: bytes -> raw records (dicts) with their line numbers
# --------------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile("[\udc80-\udcff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
CHUNK = 1024 * 1024


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


# Strict JSON: NaN, Infinity and numbers out of range are refused (databases cannot store them).
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _loads_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "JSON is nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        if exc.msg.startswith("Invalid control character") and exc.doc[exc.pos : exc.pos + 1] == "\x00":
            return f"NUL byte at column {exc.colno}"
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return f"invalid JSON: {exc}"


def iter_json_lines(fp: BinaryIO, limits: Limits) -> Iterator[RawRecord | RecordError]:
    """One JSON object per line. A bad line is reported and reading goes on with the next one."""
    line_no = 0
    record_no = 0
    while True:
        raw = fp.readline(limits.max_record_bytes + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > limits.max_record_bytes and not raw.endswith(b"\n"):
            while True:  # skip the rest of the oversized line without holding it
                rest = fp.readline(CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield RecordError(f"record is larger than the {limits.max_record_bytes:,}-byte limit", line=line_no, record=record_no)
            record_no += 1
            continue
        if not raw.strip():
            continue
        if record_no == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark
        this_record = record_no
        record_no += 1
        nul = raw.find(b"\x00")
        if nul >= 0:
            yield RecordError(f"NUL byte at column {nul + 1}", line=line_no, record=this_record)
            continue
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield RecordError(f"invalid UTF-8 at byte {exc.start + 1} of the line", line=line_no, record=this_record)
            continue
        try:
            obj = _decoder.decode(text)
        except (ValueError, RecursionError) as exc:
            yield RecordError(_loads_error(exc), line=line_no, record=this_record)
            continue
        yield RawRecord(obj, line_no, this_record, text)


def iter_json_array(fp: BinaryIO, limits: Limits) -> Iterator[RawRecord | RecordError]:
    """A JSON array of objects, decoded element by element from a sliding buffer. After a syntax
    error the rest of the array cannot be located reliably, so reading stops there."""
    # Bytes that are not UTF-8 become lone surrogates, so the record holding them can be named.
    decoder = codecs.getincrementaldecoder("utf-8-sig")("surrogateescape")
    buf = ""
    pos = 0
    base_line = 1  # line number of buf[0]
    mark, mark_line = 0, 1  # a position in buf and its line number, moved forward as records are read
    eof = False
    record_no = 0

    def line_at(i: int) -> int:
        nonlocal mark, mark_line
        if i < mark:
            return base_line + buf.count("\n", 0, i)
        mark_line += buf.count("\n", mark, i)
        mark = i
        return mark_line

    def more(min_chars: int) -> bool:
        nonlocal buf, eof
        if eof:
            return False
        raw = fp.read(max(CHUNK, min_chars))
        final = not raw
        buf += decoder.decode(raw, final=final)
        if final:
            eof = True
        return True

    def skip_ws() -> None:
        nonlocal pos
        while True:
            pos = _WS.match(buf, pos).end()
            if pos < len(buf) or not more(CHUNK):
                return

    def drop_consumed() -> None:
        nonlocal buf, pos, base_line, mark, mark_line
        if pos > CHUNK:
            base_line = line_at(pos)
            buf = buf[pos:]
            pos = 0
            mark, mark_line = 0, base_line

    try:
        skip_ws()
        if pos >= len(buf) or buf[pos] != "[":
            raise FileError("expected a JSON array starting with '['", line=line_at(pos))
        pos += 1
        first = True
        while True:
            skip_ws()
            if pos >= len(buf):
                raise FileError("the JSON array is not closed: file ends before ']'", line=line_at(pos))
            if buf[pos] == "]":
                pos += 1
                skip_ws()
                if pos < len(buf):
                    raise FileError("unexpected data after the closing ']'", line=line_at(pos))
                return
            if not first:
                if buf[pos] != ",":
                    raise FileError(f"expected ',' or ']' between records, found {buf[pos]!r}", line=line_at(pos))
                pos += 1
                skip_ws()
            first = False
            start = pos
            while True:
                try:
                    obj, end = _decoder.raw_decode(buf, start)
                    break
                except RecursionError:
                    raise FileError("JSON is nested too deeply", line=line_at(start)) from None
                except json.JSONDecodeError as exc:
                    # A record cut off by the end of the buffer fails near that end, or inside a string
                    # that runs to it: read more. Any other failure is a real syntax error.
                    cut_off = exc.pos >= len(buf) - 8 or exc.msg.startswith("Unterminated string")
                    if cut_off and _too_big(buf, start, len(buf), limits.max_record_bytes):
                        raise FileError(
                            f"record {record_no} is larger than the {limits.max_record_bytes:,}-byte limit", line=line_at(start)
                        ) from None
                    if not cut_off or not more(len(buf) - start):  # grow geometrically: few retries for big records
                        raise FileError(_loads_error(exc), line=base_line + exc.lineno - 1) from None
                except ValueError as exc:  # NaN, Infinity, numbers out of range, integers too long
                    raise FileError(f"invalid JSON: {exc}", line=line_at(start)) from None
            if _too_big(buf, start, end, limits.max_record_bytes):
                yield RecordError(f"record is larger than the {limits.max_record_bytes:,}-byte limit", line=line_at(start), record=record_no)
                record_no += 1
                pos = end
                drop_consumed()
                continue
            bad = _SURROGATE.search(buf, start, end)
            if bad:
                column = bad.start() - buf.rfind("\n", 0, bad.start())
                raise FileError(f"invalid UTF-8 at column {column}", line=line_at(bad.start()))
            yield RawRecord(obj, line_at(start), record_no, buf[start:end])
            record_no += 1
            pos = end
            drop_consumed()
    except FileError as exc:
        if exc.error.record is None:
            exc.error.record = record_no
        yield exc.error


def _too_big(buf: str, start: int, end: int, limit: int) -> bool:
    """Is buf[start:end] over `limit` bytes as UTF-8? Characters are a lower bound and a quarter of
    the upper one, so the slice is encoded only near the limit."""
    chars = end - start
    if chars > limit:
        return True
    if chars * 4 <= limit:
        return False
    return len(buf[start:end].encode("utf-8", "surrogateescape")) > limit


def iter_csv(fp: BinaryIO, limits: Limits, *, delimiter: str = ",") -> Iterator[RawRecord | RecordError]:
    """CSV with a header row. Bytes that are not UTF-8 are kept as surrogates while parsing, so the
    row that holds them can be named."""
    text = io.TextIOWrapper(fp, encoding="utf-8-sig", errors="surrogateescape", newline="")
    old_limit = csv.field_size_limit()
    csv.field_size_limit(limits.max_field_chars)
    reader = csv.reader(text, delimiter=delimiter)
    try:
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RecordError(_csv_error(exc, limits), line=reader.line_num)
            return
        header = [h.strip() for h in header]
        if any(_has_surrogate(h) for h in header):
            yield RecordError("invalid UTF-8 in the header row", line=1)
            return
        record_no = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RecordError(_csv_error(exc, limits), line=reader.line_num, record=record_no)
                record_no += 1
                if "NUL" in str(exc) or "field larger" in str(exc):
                    continue
                return
            if not row or all(not c.strip() for c in row):
                continue
            if any(_has_surrogate(c) for c in row):
                yield RecordError("invalid UTF-8", line=reader.line_num, record=record_no)
            elif len(row) != len(header):
                yield RecordError(f"has {len(row)} columns, the header has {len(header)}", line=reader.line_num, record=record_no)
            else:
                yield RawRecord(dict(zip(header, row, strict=True)), reader.line_num, record_no)
            record_no += 1
    finally:
        csv.field_size_limit(old_limit)
        text.detach()


def _has_surrogate(s: str) -> bool:
    return _SURROGATE.search(s) is not None


def _csv_error(exc: csv.Error, limits: Limits) -> str:
    msg = str(exc)
    if "field larger than field limit" in msg:
        return f"a field is longer than the {limits.max_field_chars:,}-character limit"
    if "NUL" in msg:
        return "NUL byte"
    return f"invalid CSV: {msg}"


# --------------------------------------------------------------------------------------------
# Record -> conversation
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------

@dataclass
class ReadResult:
    """Filled in while `read_samples` runs: the format it settled on."""

    format: str = ""


def sniff_container(fp: BinaryIO, filename: str = "") -> str:
    """'array', 'lines' or 'csv' from the first non-blank byte (and the file name for CSV)."""
    head = fp.read(4096)
    fp.seek(0)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise FileError("the file is empty")
    if filename.lower().endswith((".csv", ".tsv")):
        return "csv"
    if stripped[:1] == b"[":
        return "array"
    if stripped[:1] == b"{":
        return "lines"
    return "csv"


def read_samples(
    fp: BinaryIO,
    *,
    fmt: str = "auto",
    filename: str = "",
    limits: Limits | None = None,
    options: dict[str, Any] | None = None,
    result: ReadResult | None = None,
) -> Iterator[ParsedSample | RecordError]:
    """Yield each record of `fp` as a ParsedSample, or a RecordError that says where it is wrong.
    Raises FileError when the file as a whole cannot be read."""
    limits = limits or Limits()
    options = options or {}
    result = result if result is not None else ReadResult()
    if fmt not in FORMAT_CHOICES:
        raise FileError(f"unknown format {fmt!r}; choose one of {', '.join(FORMAT_CHOICES)}")
    container = "csv" if fmt == "csv" else sniff_container(fp, filename)
    if container == "csv" and fmt not in ("auto", "csv"):
        raise FileError(f"format {fmt!r} expects JSON or JSON Lines, but the file does not start with '[' or '{{'", line=1)
    if container == "csv":
        if fmt == "auto" and not filename.lower().endswith((".csv", ".tsv")):
            raise FileError("unknown format: the file is neither JSON, JSON Lines nor named .csv; pass the format explicitly", line=1)
        result.format = "csv"
        delimiter = options.get("delimiter") or ("\t" if filename.lower().endswith(".tsv") else ",")
        yield from _read_csv(fp, limits, options.get("columns") or {}, delimiter)
        return
    raw_iter = iter_json_array(fp, limits) if container == "array" else iter_json_lines(fp, limits)
    checker = _Checker(limits)
    convert = CONVERTERS.get(fmt)
    if convert:
        result.format = fmt
    for item in raw_iter:
        if isinstance(item, RecordError):
            yield item
            continue
        obj = item.obj
        if not isinstance(obj, dict):
            yield RecordError(f"record must be a JSON object, got {_type_name(obj)}", line=item.line, record=item.record)
            continue
        if convert is None:
            detected = detect_record_format(obj)
            if detected is None:
                keys = ", ".join(sorted(obj)[:10]) or "none"
                raise FileError(
                    f"unknown format: the first record has keys [{keys}]; expected alpaca (instruction/input/output), "
                    "sharegpt (conversations), messages, belle (question/std_answer or instruction/context/response) or csv",
                    line=item.line,
                )
            result.format = detected
            convert = CONVERTERS[detected]
        yield _finish(obj, item.line, item.record, convert, checker, raw=item.raw)


def _read_csv(fp: BinaryIO, limits: Limits, columns: dict[str, str], delimiter: str) -> Iterator[ParsedSample | RecordError]:
    checker = _Checker(limits)
    mapping: dict[str, str] | None = None
    for item in iter_csv(fp, limits, delimiter=delimiter):
        if isinstance(item, RecordError):
            yield item
            continue
        if mapping is None:
            mapping = csv_mapping(list(item.obj), columns)
        obj = {target: item.obj[col] for target, col in mapping.items()}
        yield _finish(obj, item.line, item.record, convert_alpaca, checker, source=item.obj)


def _finish(
    obj: dict, line: int, record: int, convert: Callable, checker: _Checker, source: dict | None = None, raw: str | None = None
) -> ParsedSample | RecordError:
    try:
        if not _depth_ok(obj, checker.limits.max_depth):
            raise FieldError(None, f"nested deeper than {checker.limits.max_depth} levels")
        if raw is not None and _RISKY_ESCAPE.search(raw):
            _check_strings(obj, "")
        conv = convert(obj, checker)
        ext = obj.get("id")
        if ext is None or ext == "":
            external_id = str(record)
        elif isinstance(ext, (str, int)) and not isinstance(ext, bool):
            external_id = str(ext)
            if len(external_id) > 255:
                raise FieldError("id", "is longer than 255 characters")
        else:
            raise FieldError("id", f"must be a string or a number, got {_type_name(ext)}")
    except FieldError as exc:
        return RecordError(exc.message, line=line, record=record, field=exc.field)
    user_text = "\n".join(m["content"] for m in conv.messages if m["role"] == "user")
    text = "\n".join(m["content"] for m in conv.messages)
    return ParsedSample(
        external_id=external_id,
        messages=conv.messages,
        source=source if source is not None else obj,
        task_type=conv.task_type,
        language=detect_language(user_text or text),
        meta=conv.meta,
        content_hash=content_hash(conv.messages),
        text=text,
        line=line,
        source_json=raw,
    )
