"""The per-sample quality report as JSON Lines or CSV, streamed (used by the command and the page)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from annotator.models import Dataset

from .selectors import metric_names, report_rows


def report_lines(dataset: Dataset, *, fmt: str = "jsonl", flagged: bool = False) -> Iterator[str]:
    if fmt == "jsonl":
        for row in report_rows(dataset, flagged=flagged):
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"unknown format {fmt!r}; choose jsonl or csv")
    names = metric_names(dataset)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["external_id", *names, "flags", "reasons"])
    yield buf.getvalue()
    for row in report_rows(dataset, flagged=flagged):
        buf.seek(0)
        buf.truncate()
        writer.writerow([row["external_id"], *("" if row[n] is None else row[n] for n in names),
                         ";".join(f["rule"] for f in row["flags"]), " | ".join(f["reason"] for f in row["flags"])])
        yield buf.getvalue()
