"""Types shared by the readers and the record converters: limits, errors, parsed records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
