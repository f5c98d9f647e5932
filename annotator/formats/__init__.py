"""Import formats: stream records out of a file and turn each into a conversation.

Nothing here touches the database. `read_samples` yields `ParsedSample`s or `RecordError`s, one
record at a time, so memory stays flat however large the file is. Every error names where it is:
line (1-based), record (0-based position) and field.

Formats: alpaca (JSON array or JSON Lines of instruction/input/output, optional system, history),
sharegpt (conversations of from/value), messages (OpenAI chat JSON Lines), belle (question/std_answer/
class, or Dolly's instruction/context/response/category), csv (with a column mapping).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from scoring.metrics.text import content_hash, detect_language

from .base import FieldError, FileError, Limits, ParsedSample, RawRecord, RecordError, format_error
from .readers import iter_csv, iter_json_array, iter_json_lines
from .records import (
    _RISKY_ESCAPE,
    CONVERTERS,
    CSV_DEFAULT_COLUMNS,
    _check_strings,
    _Checker,
    _depth_ok,
    _type_name,
    convert_alpaca,
    csv_mapping,
    detect_record_format,
)

__all__ = [
    "CSV_DEFAULT_COLUMNS", "FORMATS", "FORMAT_CHOICES", "FieldError", "FileError", "Limits", "ParsedSample", "RawRecord",
    "ReadResult", "RecordError", "format_error", "read_samples", "sniff_container",
]

FORMATS = ("alpaca", "sharegpt", "messages", "belle", "csv")
FORMAT_CHOICES = ("auto", *FORMATS)


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
