"""The export spec: what an export takes from a dataset, how it balances and selects, and how it splits.

Pure Python, no Django: the spec is parsed and checked here so that the page, the API, the CLI and the
build task agree on one meaning. `spec_parse` returns frozen dataclasses or raises `SpecError` whose
`errors` name each wrong field by path (`balance.counts["qa/hard"]`, `select.method`). `ExportSpec.to_json`
writes every field, defaults included, in a canonical form, so the same meaning gives the same hash."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = 1
FORMATS = ("messages", "prompt_completion", "alpaca", "sharegpt", "parquet")
STATUSES = ("new", "annotating", "in_review", "approved", "rejected")
VERDICTS = ("accept", "needs_fix", "reject")
DIFFICULTIES = ("easy", "medium", "hard")
BALANCE_FIELDS = ("task_type", "difficulty", "language", "cluster")
BALANCE_MODES = ("none", "counts", "ratios", "cap")
SHORT_POLICIES = ("take_all", "shrink")
SELECT_METHODS = ("random", "quality", "diversity", "cluster")
DIVERSITY_METHODS = ("k_center", "threshold")
FLAG_POLICIES = ("exclude_any", "ignore")
CONSENSUS_SCALES = ("min_accuracy", "min_completeness", "min_conciseness")

EMPTY_PART = "-"
ALL_STRATUM = "all"
KEY_SEPARATOR = "/"
MAX_SEED = 2**63 - 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_METRIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$")


class SpecError(ValueError):
    """The spec is wrong; `errors` maps each field path to a plain-English message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def stratum_part(value: object) -> str:
    """One part of a stratum key: the value as text, "-" when empty, "/" replaced so keys split cleanly."""
    if value is None:
        return EMPTY_PART
    text = str(value).strip().replace(KEY_SEPARATOR, "_")
    return text or EMPTY_PART


def stratum_key(values: Sequence[object]) -> str:
    """The stratum key of a sample: its values for `balance.by`, in that order, joined with "/"."""
    return KEY_SEPARATOR.join(stratum_part(v) for v in values) if values else ALL_STRATUM


def stratum_key_for(by: Sequence[str], attrs: Mapping[str, object]) -> str:
    """The stratum key of a sample given its attributes by name (task_type, difficulty, language, cluster)."""
    return stratum_key([attrs.get(name) for name in by])


@dataclass(frozen=True)
class MetricRange:
    name: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Consensus:
    min_confidence: float | None = None
    min_accuracy: float | None = None
    min_completeness: float | None = None
    min_conciseness: float | None = None
    verdict: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.min_confidence, self.min_accuracy, self.min_completeness, self.min_conciseness)) or bool(self.verdict)


@dataclass(frozen=True)
class Filters:
    status: tuple[str, ...] = ("approved",)
    task_types: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    flags: str | tuple[str, ...] = "ignore"
    metrics: tuple[MetricRange, ...] = ()
    drop_duplicates: bool = True
    consensus: Consensus = field(default_factory=Consensus)


@dataclass(frozen=True)
class Balance:
    """Strata and their targets. Mappings are kept as sorted (key, value) pairs so the spec stays hashable."""

    by: tuple[str, ...] = ()
    mode: str = "none"
    counts: tuple[tuple[str, int], ...] = ()
    ratios: tuple[tuple[str, float], ...] = ()
    cap: int | None = None
    short: str = "take_all"


@dataclass(frozen=True)
class Diversity:
    method: str = "k_center"
    threshold: float | None = None


@dataclass(frozen=True)
class Select:
    method: str = "random"
    quality_key: str | None = None
    diversity: Diversity | None = None


@dataclass(frozen=True)
class Split:
    """`validation` is a fraction (float in [0, 0.5]) or a count (int >= 0)."""

    validation: float | int = 0
    seed: int = 0


@dataclass(frozen=True)
class ExportSpec:
    name: str
    formats: tuple[str, ...] = ("messages",)
    filters: Filters = field(default_factory=Filters)
    balance: Balance = field(default_factory=Balance)
    select: Select = field(default_factory=Select)
    size: int | None = None
    split: Split = field(default_factory=Split)
    seed: int = 0
    system_prompt: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field, defaults included, with sorted keys; `spec_parse(spec.to_json()) == spec`."""
        f, b, s = self.filters, self.balance, self.select
        c = f.consensus
        data = {
            "version": SPEC_VERSION,
            "name": self.name,
            "formats": list(self.formats),
            "filters": {
                "status": list(f.status),
                "task_types": list(f.task_types),
                "languages": list(f.languages),
                "flags": f.flags if isinstance(f.flags, str) else list(f.flags),
                "metrics": {m.name: {k: v for k, v in (("min", m.min), ("max", m.max)) if v is not None} for m in f.metrics},
                "drop_duplicates": f.drop_duplicates,
                "consensus": {
                    **{k: getattr(c, k) for k in ("min_confidence", *CONSENSUS_SCALES) if getattr(c, k) is not None},
                    **({"verdict": list(c.verdict)} if c.verdict else {}),
                },
            },
            "balance": {
                "by": list(b.by),
                "mode": b.mode,
                "counts": dict(b.counts) if b.mode == "counts" else None,
                "ratios": dict(b.ratios) if b.mode == "ratios" else None,
                "cap": b.cap,
                "short": b.short,
            },
            "select": {
                "method": s.method,
                "quality_key": s.quality_key,
                "diversity": None if s.diversity is None else {"method": s.diversity.method, "threshold": s.diversity.threshold},
            },
            "size": self.size,
            "split": {"validation": self.split.validation, "seed": self.split.seed},
            "seed": self.seed,
            "system_prompt": self.system_prompt,
        }
        return _sorted(data)

    def canonical_json(self) -> str:
        """The spec as compact JSON with sorted keys: the text that is hashed and stored in a manifest."""
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 of the canonical JSON."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _key_path(path: str, key: str) -> str:
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


class _Parser:
    """Collects every error instead of stopping at the first, so a form can show them all at once."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def fail(self, path: str, message: str) -> None:
        self.errors.setdefault(path, message)

    def obj(self, data: Any, path: str, allowed: Sequence[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            self.fail(path, "must be an object")
            return {}
        for key in data:
            if key not in allowed:
                self.fail(f"{path}.{key}" if path else str(key), f"unknown field (expected one of {', '.join(allowed)})")
        return {k: v for k, v in data.items() if v is not None and k in allowed}

    def integer(self, value: Any, path: str, *, low: int | None = None, high: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be a whole number, got {value!r}")
            return None
        if low is not None and value < low:
            self.fail(path, f"must be at least {low}, got {value}")
            return None
        if high is not None and value > high:
            self.fail(path, f"must be at most {high}, got {value}")
            return None
        return value

    def number(self, value: Any, path: str, *, low: float | None = None, high: float | None = None, low_open: bool = False) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(path, f"must be a number, got {value!r}")
            return None
        if low is not None and (value <= low if low_open else value < low):
            self.fail(path, f"must be {'greater than' if low_open else 'at least'} {low}, got {value}")
            return None
        if high is not None and value > high:
            self.fail(path, f"must be at most {high}, got {value}")
            return None
        return value

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str | None:
        if value not in choices or not isinstance(value, str):
            self.fail(path, f"must be one of {', '.join(choices)}, got {value!r}")
            return None
        return value

    def strings(self, value: Any, path: str, *, choices: Sequence[str] | None = None, ordered: bool = False) -> tuple[str, ...]:
        """A list of strings; unordered lists are de-duplicated and sorted so equal meanings compare equal."""
        if not isinstance(value, list):
            self.fail(path, "must be a list")
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{path}[{i}]", f"must be a non-empty string, got {item!r}")
            elif choices is not None and item not in choices:
                self.fail(f"{path}[{i}]", f"must be one of {', '.join(choices)}, got {item!r}")
            elif item in out:
                if ordered:
                    self.fail(f"{path}[{i}]", f"{item!r} is listed twice")
            else:
                out.append(item)
        if ordered:
            return tuple(out)
        if choices is not None:
            return tuple(c for c in choices if c in out)
        return tuple(sorted(out))


def spec_parse(data: Any) -> ExportSpec:
    """Check a spec given as JSON data and return it, or raise SpecError naming every wrong field."""
    if not isinstance(data, Mapping):
        raise SpecError({"spec": "must be an object"})
    p = _Parser()
    top = p.obj(data, "", ("version", "name", "formats", "filters", "balance", "select", "size", "split", "seed", "system_prompt"))
    if "version" in top and top["version"] != SPEC_VERSION:
        p.fail("version", f"must be {SPEC_VERSION}, got {top['version']!r}")

    name = top.get("name")
    if not isinstance(name, str) or not name:
        p.fail("name", "is required")
    elif not _NAME.match(name):
        p.fail("name", "must be 1 to 100 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")

    formats = ("messages",)
    if "formats" in top:
        formats = p.strings(top["formats"], "formats", choices=FORMATS)
        if isinstance(top["formats"], list) and not top["formats"]:
            p.fail("formats", "must name at least one format")

    filters = _filters(p, top.get("filters"))
    balance = _balance(p, top.get("balance"))
    select = _select(p, top.get("select"))
    size = p.integer(top["size"], "size", low=1) if "size" in top else None
    split = _split(p, top.get("split"))
    seed = p.integer(top.get("seed", 0), "seed", low=0, high=MAX_SEED) or 0

    system_prompt = top.get("system_prompt")
    if system_prompt is not None and not isinstance(system_prompt, str):
        p.fail("system_prompt", "must be text")
        system_prompt = None
    elif system_prompt is not None and not system_prompt.strip():
        system_prompt = None

    if balance.mode == "ratios" and size is None and "size" not in p.errors:
        p.fail("size", "is required with balance mode 'ratios' (the ratios are scaled to it)")
    if balance.mode == "counts" and size is not None and balance.counts:
        total = sum(n for _k, n in balance.counts)
        if size != total:
            p.fail("size", f"must equal the sum of balance.counts ({total}) or be left empty")

    if p.errors:
        raise SpecError(p.errors)
    return ExportSpec(name=name, formats=formats, filters=filters, balance=balance, select=select, size=size, split=split,
                      seed=seed, system_prompt=system_prompt)


def _filters(p: _Parser, data: Any) -> Filters:
    d = p.obj(data, "filters", ("status", "task_types", "languages", "flags", "metrics", "drop_duplicates", "consensus"))
    status = ("approved",)
    if "status" in d:
        status = p.strings(d["status"], "filters.status", choices=STATUSES)
        if isinstance(d["status"], list) and not d["status"]:
            p.fail("filters.status", "must name at least one status")
    task_types = p.strings(d["task_types"], "filters.task_types") if "task_types" in d else ()
    languages = p.strings(d["languages"], "filters.languages") if "languages" in d else ()

    flags: str | tuple[str, ...] = "ignore"
    if "flags" in d:
        if isinstance(d["flags"], str):
            flags = p.choice(d["flags"], "filters.flags", FLAG_POLICIES) or "ignore"
        elif isinstance(d["flags"], list):
            flags = p.strings(d["flags"], "filters.flags") or "ignore"
        else:
            p.fail("filters.flags", "must be 'exclude_any', 'ignore' or a list of flag or rule names")

    metrics: list[MetricRange] = []
    if "metrics" in d:
        if not isinstance(d["metrics"], Mapping):
            p.fail("filters.metrics", 'must be an object like {"ifd": {"min": 0.2, "max": 1.0}}')
        else:
            for metric in sorted(d["metrics"]):
                path = _key_path("filters.metrics", metric)
                if not isinstance(metric, str) or not _METRIC.match(metric):
                    p.fail(path, "is not a metric name (letters, digits, '_', '.', ':' or '-', at most 48)")
                    continue
                bounds = p.obj(d["metrics"][metric], path, ("min", "max"))
                if not bounds:
                    p.fail(path, "needs a min, a max or both")
                    continue
                lo = p.number(bounds["min"], f"{path}.min") if "min" in bounds else None
                hi = p.number(bounds["max"], f"{path}.max") if "max" in bounds else None
                if lo is not None and hi is not None and lo > hi:
                    p.fail(f"{path}.min", f"is greater than max ({lo} > {hi})")
                metrics.append(MetricRange(metric, lo, hi))

    drop = d.get("drop_duplicates", True)
    if not isinstance(drop, bool):
        p.fail("filters.drop_duplicates", "must be true or false")
        drop = True

    c = p.obj(d.get("consensus"), "filters.consensus", ("min_confidence", *CONSENSUS_SCALES, "verdict"))
    consensus = Consensus(
        min_confidence=p.number(c["min_confidence"], "filters.consensus.min_confidence", low=0, high=1) if "min_confidence" in c else None,
        **{k: p.number(c[k], f"filters.consensus.{k}", low=1, high=5) if k in c else None for k in CONSENSUS_SCALES},
        verdict=p.strings(c["verdict"], "filters.consensus.verdict", choices=VERDICTS) if "verdict" in c else (),
    )
    return Filters(status=status, task_types=task_types, languages=languages, flags=flags, metrics=tuple(metrics),
                   drop_duplicates=drop, consensus=consensus)


def _check_key(p: _Parser, path: str, key: Any, by: tuple[str, ...]) -> bool:
    """A stratum key must have one part per `balance.by` field, and difficulty/cluster parts must make sense."""
    if not isinstance(key, str) or not key:
        p.fail(path, "is not a stratum key")
        return False
    parts = key.split(KEY_SEPARATOR)
    if len(parts) != len(by):
        example = KEY_SEPARATOR.join(by)
        p.fail(path, f"has {len(parts)} part{'s' if len(parts) != 1 else ''} but balance.by has {len(by)} ({example}); "
                     f"write the values in that order joined with '/', '-' for an empty value")
        return False
    for name, part in zip(by, parts, strict=True):
        if not part or part != part.strip():
            p.fail(path, f"has an empty {name} part (use '-' for an empty value)")
            return False
        if name == "difficulty" and part not in (*DIFFICULTIES, EMPTY_PART):
            p.fail(path, f"difficulty part must be one of {', '.join(DIFFICULTIES)} or '-', got {part!r}")
            return False
        if name == "cluster" and part != EMPTY_PART and not re.fullmatch(r"-?\d+", part):
            p.fail(path, f"cluster part must be a cluster number or '-', got {part!r}")
            return False
    return True


def _balance(p: _Parser, data: Any) -> Balance:
    d = p.obj(data, "balance", ("by", "mode", "counts", "ratios", "cap", "short"))
    by = p.strings(d["by"], "balance.by", choices=BALANCE_FIELDS, ordered=True) if "by" in d else ()
    mode = p.choice(d.get("mode", "none"), "balance.mode", BALANCE_MODES) or "none"
    short = p.choice(d.get("short", "take_all"), "balance.short", SHORT_POLICIES) or "take_all"
    by_ok = "balance.by" not in p.errors and not any(k.startswith("balance.by[") for k in p.errors)

    for other, wanted in (("counts", "counts"), ("ratios", "ratios"), ("cap", "cap")):
        if other in d and mode != wanted:
            p.fail(f"balance.{other}", f"is only used with mode '{wanted}' (mode is '{mode}')")
    if mode in ("counts", "ratios", "cap") and not by and by_ok:
        p.fail("balance.by", f"mode '{mode}' needs at least one field to balance by ({', '.join(BALANCE_FIELDS)})")

    counts: list[tuple[str, int]] = []
    ratios: list[tuple[str, float]] = []
    cap = None
    if mode in ("counts", "ratios"):
        table = d.get(mode)
        path = f"balance.{mode}"
        if not isinstance(table, Mapping) or not table:
            p.fail(path, f"is required with mode '{mode}': an object of stratum key to {'count' if mode == 'counts' else 'weight'}")
        else:
            for key in sorted(table, key=str):
                kpath = _key_path(path, key)
                if by and by_ok and not _check_key(p, kpath, key, by):
                    continue
                if mode == "counts":
                    n = p.integer(table[key], kpath, low=0)
                    if n is not None:
                        counts.append((key, n))
                else:
                    w = p.number(table[key], kpath, low=0, low_open=True)
                    if w is not None:
                        ratios.append((key, w))
            if mode == "counts" and counts and len(counts) == len(table) and sum(n for _k, n in counts) == 0:
                p.fail(path, "asks for no samples at all (every count is 0)")
    if mode == "cap":
        if "cap" not in d:
            p.fail("balance.cap", "is required with mode 'cap': the most samples to take from one stratum")
        else:
            cap = p.integer(d["cap"], "balance.cap", low=1)
    return Balance(by=by, mode=mode, counts=tuple(counts), ratios=tuple(ratios), cap=cap, short=short)


def _select(p: _Parser, data: Any) -> Select:
    d = p.obj(data, "select", ("method", "quality_key", "diversity"))
    method = p.choice(d.get("method", "random"), "select.method", SELECT_METHODS) or "random"
    quality_key = d.get("quality_key")
    if quality_key is not None and (not isinstance(quality_key, str) or not (quality_key == "consensus" or _METRIC.match(quality_key))):
        p.fail("select.quality_key", f"must be 'consensus' or a metric name, got {quality_key!r}")
        quality_key = None
    if quality_key is not None and method in ("random", "cluster"):
        p.fail("select.quality_key", f"is only used with method 'quality' or 'diversity' (method is '{method}')")
    if method == "quality" and quality_key is None and "select.quality_key" not in p.errors:
        p.fail("select.quality_key", "is required with method 'quality': 'consensus' or a metric name")

    diversity = None
    if "diversity" in d and method != "diversity":
        p.fail("select.diversity", f"is only used with method 'diversity' (method is '{method}')")
    elif method == "diversity":
        dd = p.obj(d.get("diversity"), "select.diversity", ("method", "threshold"))
        dmethod = p.choice(dd.get("method", "k_center"), "select.diversity.method", DIVERSITY_METHODS) or "k_center"
        threshold = None
        if dmethod == "threshold":
            if "threshold" not in dd:
                p.fail("select.diversity.threshold", "is required with diversity method 'threshold': a cosine similarity in (0, 1]")
            else:
                threshold = p.number(dd["threshold"], "select.diversity.threshold", low=0, high=1, low_open=True)
            if quality_key is None and "select.quality_key" not in p.errors:
                p.fail("select.quality_key", "is required with diversity method 'threshold' (candidates are taken best first)")
        elif "threshold" in dd:
            p.fail("select.diversity.threshold", "is only used with diversity method 'threshold'")
        diversity = Diversity(method=dmethod, threshold=threshold)
    return Select(method=method, quality_key=quality_key, diversity=diversity)


def _split(p: _Parser, data: Any) -> Split:
    d = p.obj(data, "split", ("validation", "seed"))
    validation: float | int = 0
    if "validation" in d:
        v = d["validation"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            p.fail("split.validation", f"must be a fraction in [0, 0.5] or a whole count, got {v!r}")
        elif isinstance(v, int):
            validation = p.integer(v, "split.validation", low=0) or 0
        else:
            validation = p.number(v, "split.validation", low=0, high=0.5) or 0.0
    seed = p.integer(d.get("seed", 0), "split.seed", low=0, high=MAX_SEED) or 0
    return Split(validation=validation, seed=seed)
