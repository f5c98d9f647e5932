"""Shared result types for metrics. Pure Python; no Django."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Flag:
    """A problem a metric found, with a reason a person can read, e.g.
    Flag("refusal", "answer refuses: matches 'As an AI language model'")."""

    rule: str
    reason: str


@dataclass
class MetricResult:
    """One metric on one sample: its value (a number, a label, or None when it does not apply), the
    flags it raised, and any details worth keeping (matched pattern, other sample id, ...)."""

    name: str
    value: Any = None
    flags: list[Flag] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)
