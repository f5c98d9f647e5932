"""Geometry for the dashboard's server-side SVG charts: plain numbers in, coordinates out, labels left
as text for the template to escape. No JavaScript, no inline styles (the Content-Security-Policy
allows neither): colours come from classes in static/css/app.css.

- `area_chart`: stacked areas over days (samples by status), one polygon per layer;
- `column_chart`: one column per day (labels per day);
- `sparkline`: a small polyline (one annotator's labels per day);
- `dot_whisker_chart`: a dot for each estimate and a whisker for its interval (agreement);
- `bar_chart`: horizontal bars, each optionally a link (conflict reasons);
- `heat_table`: a table's cells with a heat level 0-5 (approved data by task type x difficulty).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from urllib.parse import urlencode

from django.utils.translation import gettext_lazy as _

from annotator.models import Sample

WIDTH = 720
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 28
HEAT_LEVELS = 5


def _nice(top: float) -> int:
    """The smallest 1, 2 or 5 x 10^k at or above `top` (1 for nothing): counts get whole ticks."""
    if top <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(top))
    for m in (1, 2, 5, 10):
        if m * magnitude >= top:
            return int(m * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def short_number(n: float) -> str:
    """1234 -> 1.2k, 2500000 -> 2.5M; small numbers as they are."""
    n = float(n)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            text = f"{n / div:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{n:.0f}" if n == int(n) else f"{n:.2f}"


def _r(v: float) -> float:
    return round(v, 1)


def _x_ticks(days: Sequence[date], x, most: int = 6) -> list[dict]:
    n = len(days)
    if not n:
        return []
    idx = sorted({round(i * (n - 1) / (most - 1)) for i in range(most)}) if n > most else list(range(n))
    return [{"x": _r(x(i)), "label": days[i].isoformat()[5:], "title": days[i].isoformat()} for i in idx]


def _y_ticks(top: int, y) -> list[dict]:
    """Gridlines at whole numbers: 4 or 5 steps where they divide the top, else 2, else 1."""
    steps = next(k for k in (4, 5, 2, 1) if top % k == 0)
    return [{"y": _r(y(top * i / steps)), "label": short_number(top * i // steps)} for i in range(steps + 1)]


def area_chart(days: Sequence[date], layers: Sequence[tuple[str, str, Sequence[int]]], *, height: int = 240) -> dict:
    """Stacked areas, the first layer at the bottom. `layers` = [(key, label, values per day)];
    negative values (a log that does not add up) are drawn as zero."""
    n = len(days)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    clean = [(k, label, [max(0, v) for v in values]) for k, label, values in layers]
    totals = [sum(vals[i] for _k, _l, vals in clean) for i in range(n)]
    top = _nice(max(totals, default=0))

    def x(i: int) -> float:
        return LEFT + (i * plot_w / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - v * plot_h / top

    out, lower = [], [0] * n
    for key, label, vals in clean:
        upper = [lower[i] + vals[i] for i in range(n)]
        points = [f"{_r(x(i))},{_r(y(upper[i]))}" for i in range(n)] + [f"{_r(x(i))},{_r(y(lower[i]))}" for i in reversed(range(n))]
        out.append({"key": key, "label": label, "points": " ".join(points), "last": vals[-1] if vals else 0})
        lower = upper
    return {"kind": "area", "width": WIDTH, "height": height, "layers": out, "x_ticks": _x_ticks(days, x), "y_ticks": _y_ticks(top, y),
            "left": LEFT, "right": WIDTH - RIGHT, "bottom": TOP + plot_h, "top": TOP, "empty": not n or not any(totals)}


def column_chart(days: Sequence[date], values: Sequence[int], *, height: int = 160) -> dict:
    """One column per day."""
    n = len(days)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    top = _nice(max(values, default=0))
    step = plot_w / max(n, 1)
    width = max(1.0, step * 0.8)

    def x(i: float) -> float:
        return LEFT + step * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h - v * plot_h / top

    columns = [{"x": _r(x(i) - width / 2), "y": _r(y(v)), "width": _r(width), "height": _r(TOP + plot_h - y(v)), "value": v,
                "day": days[i].isoformat()} for i, v in enumerate(values)]
    return {"kind": "columns", "width": WIDTH, "height": height, "columns": columns, "x_ticks": _x_ticks(days, x), "y_ticks": _y_ticks(top, y),
            "left": LEFT, "right": WIDTH - RIGHT, "bottom": TOP + plot_h, "top": TOP, "empty": not any(values)}


def sparkline(values: Sequence[int], *, width: int = 180, height: int = 28) -> dict:
    n = len(values)
    top = max(values, default=0) or 1

    def x(i: int) -> float:
        return 1 + (i * (width - 2) / (n - 1) if n > 1 else (width - 2) / 2)

    points = " ".join(f"{_r(x(i))},{_r(height - 2 - v * (height - 4) / top)}" for i, v in enumerate(values))
    return {"width": width, "height": height, "points": points}


def dot_whisker_chart(rows: Sequence[dict], *, row_height: int = 28, label_width: int = 190) -> dict:
    """rows = [{"label", "value", "low", "high", "n"}]; the scale runs from below the lowest figure
    (at most -1, at least 0) to 1, with reference lines at 0 and Krippendorff's 0.667 and 0.8."""
    x0, x1 = label_width, WIDTH - 110
    figures = [v for r in rows for v in (r.get("value"), r.get("low")) if v is not None]
    lo = max(-1.0, min(0.0, math.floor(min(figures, default=0.0) * 10) / 10))
    span = 1.0 - lo or 1.0

    def x(v: float) -> float:
        return x0 + (min(1.0, max(lo, v)) - lo) * (x1 - x0) / span

    height = TOP + row_height * len(rows) + BOTTOM
    out = []
    for i, r in enumerate(rows):
        cy = TOP + row_height * i + row_height / 2
        value, low, high = r.get("value"), r.get("low"), r.get("high")
        out.append({
            **r, "cy": _r(cy), "text_y": _r(cy + 4), "defined": value is not None,
            "cx": _r(x(value)) if value is not None else None,
            "whisker": low is not None and high is not None, "x_low": _r(x(low)) if low is not None else None,
            "x_high": _r(x(high)) if high is not None else None,
        })
    refs = [{"x": _r(x(v)), "label": label} for v, label in ((0.0, "0"), (0.667, "0.667"), (0.8, "0.8")) if v >= lo]
    ticks = [{"x": _r(x(v)), "label": f"{v:g}"} for v in sorted({lo, 0.5, 1.0})]
    return {"kind": "dots", "width": WIDTH, "height": height, "rows": out, "refs": refs, "ticks": ticks, "x0": x0, "x1": x1,
            "top": TOP, "bottom": height - BOTTOM, "value_x": x1 + 10, "empty": not rows}


def bar_chart(rows: Sequence[dict], *, bar_width: int = 380, row_height: int = 26, label_width: int = 200) -> dict:
    """rows = [{"label", "value", "href" (optional)}]; horizontal bars scaled to the largest value."""
    top = max((r["value"] for r in rows), default=0) or 1
    out = [{**r, "y": row_height * i, "text_y": row_height * i + 17, "bar_y": row_height * i + 5,
            "width": _r(max(1.0, bar_width * r["value"] / top)) if r["value"] else 0} for i, r in enumerate(rows)]
    return {"kind": "bars", "width": WIDTH, "height": row_height * len(rows) + 4, "rows": out, "label_x": label_width - 10,
            "bar_x": label_width, "value_x": label_width + bar_width + 10, "empty": not rows}


def heat_level(n: int, top: int) -> int:
    """0 for nothing, else 1..HEAT_LEVELS by share of the largest cell."""
    if n <= 0 or top <= 0:
        return 0
    return max(1, min(HEAT_LEVELS, math.ceil(HEAT_LEVELS * n / top)))


def heat_table(rows: Sequence[dict], columns: Sequence[str], top: int) -> list[dict]:
    """rows = [{"cells": {column: n}, ...}] -> the same rows with "heat": [{"column", "n", "level"}] in column order."""
    return [{**r, "heat": [{"column": c, "n": r["cells"].get(c, 0), "level": heat_level(r["cells"].get(c, 0), top)} for c in columns]}
            for r in rows]


# ---------------------------------------------------------------------------------------------
# The dashboard's charts from reviews.dashboard's sections
# ---------------------------------------------------------------------------------------------

# Stacked from the bottom: finished work first, so the area that grows is at the base.
STACK_ORDER = ("approved", "rejected", "in_review", "annotating", "new")
REASON_LABELS = {
    "verdict_split": _("Verdicts differ"),
    "rejected": _("Someone rejected it"),
    "corrected": _("Someone corrected the answer"),
    "scale_spread": _("A scale spreads by 2 or more"),
    "flagged": _("Flagged by a metric"),
    "not_accepted": _("Nobody accepted it"),
    "manual": _("Auto-approve is off"),
}
CRITERION_LABELS = {
    "accuracy": _("accuracy"), "completeness": _("completeness"), "conciseness": _("conciseness"),
    "verdict": _("verdict"), "difficulty": _("difficulty"),
}
LEVEL_LABELS = {"ordinal": _("ordinal"), "nominal": _("nominal"), "interval": _("interval"), "ratio": _("ratio")}
BUCKET_LABELS = {"easy": _("easy"), "medium": _("medium"), "hard": _("hard"), "": _("no bucket")}


def criterion_label(name: str) -> str:
    if name.startswith("tag:"):
        return _("tag: %(tag)s") % {"tag": name[4:].replace("_", " ")}
    return str(CRITERION_LABELS.get(name, name))


def progress_chart(progress: dict) -> dict:
    labels = dict(Sample.Status.choices)
    layers = [(key, labels.get(key, key), progress["series"].get(key, [])) for key in STACK_ORDER]
    return area_chart(progress["days"], layers)


def throughput_charts(throughput: dict) -> tuple[dict, list[dict]]:
    """(the column chart of labels per day, the annotators with a sparkline each)"""
    rows = [{**a, "spark": sparkline(a["per_day"])} for a in throughput["annotators"]]
    return column_chart(throughput["days"], throughput["per_day"]), rows


def agreement_chart(agreement: dict) -> dict:
    rows = [{**c, "label": criterion_label(c["criterion"]), "level_label": LEVEL_LABELS.get(c["level"], c["level"])}
            for c in agreement["criteria"]]
    return dot_whisker_chart(rows)


def reasons_chart(reasons: list[tuple[str, int]], queue_url: str) -> dict:
    rows = [{"label": str(REASON_LABELS.get(code, code)), "code": code, "value": n, "href": f"{queue_url}?{urlencode({'reason': code})}"}
            for code, n in reasons]
    return bar_chart(rows)


def balance_table(balance: dict) -> dict:
    columns = [{"key": b, "label": BUCKET_LABELS.get(b, b), "total": balance["columns"].get(b, 0)} for b in balance["buckets"]]
    return {**balance, "column_heads": columns, "heat_rows": heat_table(balance["rows"], balance["buckets"], balance["max_cell"])}
