"""Chart data for server-side SVG: bars scaled to the largest value, labels left as text (the
template escapes them). No JavaScript and nothing fetched from elsewhere."""

from __future__ import annotations

from django.utils.translation import gettext as _

BAR_WIDTH = 360  # pixels for the longest bar


def bar_chart(chart_id: str, title: str, items: list[tuple[str, float]]) -> dict:
    top = max((v for _l, v in items), default=0) or 1
    rows = [{"label": str(label), "value": value, "width": round(BAR_WIDTH * value / top, 1), "y": 24 * i}
            for i, (label, value) in enumerate(items)]
    return {"id": chart_id, "title": title, "kind": "bars", "rows": rows, "height": 24 * len(rows) + 4, "empty": not rows}


def stacked_chart(chart_id: str, title: str, items: dict[str, dict[str, int]], keys: tuple[str, ...]) -> dict:
    top = max((sum(v.values()) for v in items.values()), default=0) or 1
    rows = []
    for i, (label, parts) in enumerate(items.items()):
        x, segments = 0.0, []
        for key in keys:
            w = round(BAR_WIDTH * parts.get(key, 0) / top, 1)
            segments.append({"key": key, "value": parts.get(key, 0), "x": x, "width": w})
            x += w
        rows.append({"label": label, "segments": segments, "total": sum(parts.values()), "y": 24 * i})
    return {"id": chart_id, "title": title, "kind": "stacked", "rows": rows, "keys": keys, "height": 24 * len(rows) + 4, "empty": not rows}


def quality_charts(report: dict) -> list[dict]:
    summary = report.get("summary") or {}
    charts = [bar_chart("flags", _("Flags by rule"), report["flags"])]
    dup = summary.get("duplicates")
    if dup:
        charts.append(bar_chart("duplicates", _("Duplicates (samples flagged)"), [
            (_("exact"), dup.get("exact_flagged", 0)), (_("near"), dup.get("near_flagged", 0)), (_("semantic"), dup.get("semantic_flagged", 0)),
        ]))
    div = summary.get("diversity") or {}
    sizes = (div.get("instructions") or {}).get("cluster_sizes") or {}
    if sizes:
        charts.append(bar_chart("clusters", _("Instruction clusters (samples per cluster)"),
                                sorted(((f"#{k}", v) for k, v in sizes.items()), key=lambda kv: -kv[1])[:30]))
    if report["difficulty"]:
        source = (summary.get("difficulty") or {}).get("from")
        title = _("Difficulty by task type (IFD)") if source == "ifd" else _("Difficulty by task type (text heuristic: no causal LM set)")
        charts.append(stacked_chart("difficulty", title, report["difficulty"], ("easy", "medium", "hard")))
    if any(n for _l, n in report["length_hist"]):
        charts.append(bar_chart("lengths", _("Answer length (tokens)"), report["length_hist"]))
    return charts
