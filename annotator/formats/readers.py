"""Readers: bytes -> raw records (dicts) with their line numbers. JSON Lines, a JSON array read
element by element from a sliding buffer, and CSV. Memory stays flat however large the file."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from typing import BinaryIO

from .base import FileError, Limits, RawRecord, RecordError

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
