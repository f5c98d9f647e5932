"""The per-sample quality report as JSON Lines or CSV, streamed (used by the command and the page)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from annotator.models import Dataset

from .selectors import metric_names, report_rows

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (text from imported files)."""
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def report_lines(dataset: Dataset, *, fmt: str = "jsonl", flagged: bool = False) -> Iterator[str]:
    names = metric_names(dataset)
    if fmt == "jsonl":
        for row in report_rows(dataset, flagged=flagged, names=names):
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"unknown format {fmt!r}; choose jsonl or csv")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["external_id", *names, "flags", "reasons"])
    yield buf.getvalue()
    for row in report_rows(dataset, flagged=flagged, names=names):
        buf.seek(0)
        buf.truncate()
        writer.writerow([_cell(row["external_id"]), *(_cell(row[n]) for n in names),
                         ";".join(f["rule"] for f in row["flags"]), _cell(" | ".join(f["reason"] for f in row["flags"]))])
        yield buf.getvalue()
