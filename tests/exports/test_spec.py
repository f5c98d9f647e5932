"""The export spec: defaults, canonical round trip, and errors that name the field and say what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exports.spec import (
    Balance,
    Consensus,
    Diversity,
    ExportSpec,
    Filters,
    MetricRange,
    Select,
    SpecError,
    Split,
    spec_parse,
    stratum_key,
    stratum_key_for,
)

FULL = {
    "name": "mix-v1",
    "formats": ["parquet", "messages", "alpaca"],
    "filters": {
        "status": ["in_review", "approved"],
        "task_types": ["qa", "code"],
        "languages": ["en"],
        "flags": ["empty_answer", "near_duplicate"],
        "metrics": {"ifd": {"min": 0.2, "max": 1.0}, "reward": {"min": -1}},
        "drop_duplicates": False,
        "consensus": {"min_confidence": 0.6, "min_accuracy": 4, "verdict": ["accept"]},
    },
    "balance": {"by": ["task_type", "difficulty"], "mode": "ratios", "ratios": {"qa/hard": 2, "code/-": 1.5}, "short": "shrink"},
    "select": {"method": "diversity", "quality_key": "consensus", "diversity": {"method": "threshold", "threshold": 0.9}},
    "size": 1000,
    "split": {"validation": 0.1, "seed": 7},
    "seed": 42,
    "system_prompt": "You are helpful.",
}


def errors_of(data):
    with pytest.raises(SpecError) as info:
        spec_parse(data)
    return info.value.errors


def test_a_name_alone_gives_every_default():
    # given a spec with only a name
    # when it is parsed
    spec = spec_parse({"name": "first"})
    # then every other field has its documented default
    assert spec == ExportSpec(
        name="first",
        formats=("messages",),
        filters=Filters(status=("approved",), task_types=(), languages=(), flags="ignore", metrics=(), drop_duplicates=True,
                        consensus=Consensus()),
        balance=Balance(by=(), mode="none", counts=(), ratios=(), cap=None, short="take_all"),
        select=Select(method="random", quality_key=None, diversity=None),
        size=None,
        split=Split(validation=0, seed=0),
        seed=0,
        system_prompt=None,
    )


def test_a_full_spec_is_parsed_into_normalised_values():
    spec = spec_parse(FULL)
    assert spec.formats == ("messages", "alpaca", "parquet")
    assert spec.filters.status == ("in_review", "approved")
    assert spec.filters.task_types == ("code", "qa")
    assert spec.filters.flags == ("empty_answer", "near_duplicate")
    assert spec.filters.metrics == (MetricRange("ifd", 0.2, 1.0), MetricRange("reward", -1, None))
    assert spec.filters.consensus == Consensus(min_confidence=0.6, min_accuracy=4, verdict=("accept",))
    assert spec.balance == Balance(by=("task_type", "difficulty"), mode="ratios", ratios=(("code/-", 1.5), ("qa/hard", 2)), short="shrink")
    assert spec.select == Select(method="diversity", quality_key="consensus", diversity=Diversity("threshold", 0.9))
    assert (spec.size, spec.split, spec.seed, spec.system_prompt) == (1000, Split(0.1, 7), 42, "You are helpful.")


def test_to_json_round_trips_and_is_canonical():
    # given a parsed spec
    spec = spec_parse(FULL)
    # when it is written and read again
    data = spec.to_json()
    again = spec_parse(json.loads(json.dumps(data)))
    # then nothing changed, the keys are sorted at every level, and the hash is over the canonical text
    assert again == spec
    assert json.dumps(data) == json.dumps(data, sort_keys=True)
    assert spec.canonical_json() == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert again.digest() == spec.digest()
    assert len(spec.digest()) == 64
    assert data["version"] == 1
    assert data["balance"] == {"by": ["task_type", "difficulty"], "cap": None, "counts": None, "mode": "ratios",
                               "ratios": {"code/-": 1.5, "qa/hard": 2}, "short": "shrink"}
    assert data["filters"]["metrics"] == {"ifd": {"max": 1.0, "min": 0.2}, "reward": {"min": -1}}


def test_the_defaults_round_trip_too():
    spec = spec_parse({"name": "d"})
    assert spec_parse(spec.to_json()) == spec


def test_the_same_meaning_gives_the_same_digest_and_a_different_one_does_not():
    # given two specs that differ only in list order and repetition
    a = spec_parse({"name": "x", "filters": {"status": ["approved", "in_review"], "languages": ["fr", "en"]}})
    b = spec_parse({"name": "x", "filters": {"status": ["in_review", "approved", "approved"], "languages": ["en", "fr"]}})
    c = spec_parse({"name": "x", "filters": {"status": ["approved", "in_review"], "languages": ["en"]}})
    # then they hash the same, and a real change hashes differently
    assert a.digest() == b.digest()
    assert a.digest() != c.digest()


def test_balance_order_matters_because_it_orders_the_key():
    a = spec_parse({"name": "x", "balance": {"by": ["task_type", "language"]}})
    b = spec_parse({"name": "x", "balance": {"by": ["language", "task_type"]}})
    assert a.balance.by == ("task_type", "language")
    assert a.digest() != b.digest()


def test_null_means_absent_and_an_empty_system_prompt_is_none():
    spec = spec_parse({"name": "x", "size": None, "system_prompt": "  ", "select": {"quality_key": None}})
    assert (spec.size, spec.system_prompt, spec.select.quality_key) == (None, None, None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, {"name": "is required"}),
        ({"name": "../etc"}, {"name": "must be 1 to 100 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"}),
        ({"name": "x" * 101}, {"name": "must be 1 to 100 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"}),
        ({"name": "x", "colour": "red"}, {"colour": "unknown field (expected one of version, name, formats, filters, balance, select, size, "
                                                   "split, seed, system_prompt)"}),
        ({"name": "x", "version": 2}, {"version": "must be 1, got 2"}),
        ({"name": "x", "formats": ["messages", "csv"]},
         {"formats[1]": "must be one of messages, prompt_completion, alpaca, sharegpt, parquet, got 'csv'"}),
        ({"name": "x", "formats": []}, {"formats": "must name at least one format"}),
        ({"name": "x", "filters": {"status": ["done"]}},
         {"filters.status[0]": "must be one of new, annotating, in_review, approved, rejected, got 'done'"}),
        ({"name": "x", "filters": {"flags": "some"}}, {"filters.flags": "must be one of exclude_any, ignore, got 'some'"}),
        ({"name": "x", "filters": {"metrics": {"ifd": {}}}}, {'filters.metrics["ifd"]': "needs a min, a max or both"}),
        ({"name": "x", "filters": {"metrics": {"ifd": {"min": 2, "max": 1}}}}, {'filters.metrics["ifd"].min': "is greater than max (2 > 1)"}),
        ({"name": "x", "filters": {"metrics": {"ifd": {"low": 1}}}},
         {'filters.metrics["ifd"].low': "unknown field (expected one of min, max)", 'filters.metrics["ifd"]': "needs a min, a max or both"}),
        ({"name": "x", "filters": {"consensus": {"min_confidence": 1.5}}}, {"filters.consensus.min_confidence": "must be at most 1, got 1.5"}),
        ({"name": "x", "filters": {"consensus": {"min_accuracy": 0}}}, {"filters.consensus.min_accuracy": "must be at least 1, got 0"}),
        ({"name": "x", "filters": {"consensus": {"verdict": ["maybe"]}}},
         {"filters.consensus.verdict[0]": "must be one of accept, needs_fix, reject, got 'maybe'"}),
        ({"name": "x", "filters": {"drop_duplicates": "yes"}}, {"filters.drop_duplicates": "must be true or false"}),
        ({"name": "x", "balance": {"by": ["topic"]}}, {"balance.by[0]": "must be one of task_type, difficulty, language, cluster, got 'topic'"}),
        ({"name": "x", "balance": {"by": ["language", "language"]}}, {"balance.by[1]": "'language' is listed twice"}),
        ({"name": "x", "balance": {"mode": "counts", "counts": {"qa": 1}}},
         {"balance.by": "mode 'counts' needs at least one field to balance by (task_type, difficulty, language, cluster)"}),
        ({"name": "x", "balance": {"by": ["task_type", "difficulty"], "mode": "counts", "counts": {"qa": 10, "qa/hard": 5}}},
         {'balance.counts["qa"]': "has 1 part but balance.by has 2 (task_type/difficulty); write the values in that order joined "
                                  "with '/', '-' for an empty value"}),
        ({"name": "x", "balance": {"by": ["task_type", "difficulty"], "mode": "counts", "counts": {"qa/extreme": 10}}},
         {'balance.counts["qa/extreme"]': "difficulty part must be one of easy, medium, hard or '-', got 'extreme'"}),
        ({"name": "x", "balance": {"by": ["cluster"], "mode": "counts", "counts": {"big": 3}}},
         {'balance.counts["big"]': "cluster part must be a cluster number or '-', got 'big'"}),
        ({"name": "x", "balance": {"by": ["task_type", "language"], "mode": "counts", "counts": {"qa/": 3}}},
         {'balance.counts["qa/"]': "has an empty language part (use '-' for an empty value)"}),
        ({"name": "x", "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": -1}}},
         {'balance.counts["qa"]': "must be at least 0, got -1"}),
        ({"name": "x", "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 0}}},
         {"balance.counts": "asks for no samples at all (every count is 0)"}),
        ({"name": "x", "balance": {"by": ["task_type"], "mode": "counts"}},
         {"balance.counts": "is required with mode 'counts': an object of stratum key to count"}),
        ({"name": "x", "size": 5, "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 3, "code": 3}}},
         {"size": "must equal the sum of balance.counts (6) or be left empty"}),
        ({"name": "x", "balance": {"by": ["task_type"], "mode": "ratios", "ratios": {"qa": 1}}},
         {"size": "is required with balance mode 'ratios' (the ratios are scaled to it)"}),
        ({"name": "x", "size": 10, "balance": {"by": ["task_type"], "mode": "ratios", "ratios": {"qa": 0}}},
         {'balance.ratios["qa"]': "must be greater than 0, got 0"}),
        ({"name": "x", "balance": {"by": ["task_type"], "cap": 3}}, {"balance.cap": "is only used with mode 'cap' (mode is 'none')"}),
        ({"name": "x", "balance": {"by": ["task_type"], "mode": "cap"}},
         {"balance.cap": "is required with mode 'cap': the most samples to take from one stratum"}),
        ({"name": "x", "balance": {"short": "skip"}}, {"balance.short": "must be one of take_all, shrink, got 'skip'"}),
        ({"name": "x", "select": {"method": "best"}}, {"select.method": "must be one of random, quality, diversity, cluster, got 'best'"}),
        ({"name": "x", "select": {"method": "quality"}}, {"select.quality_key": "is required with method 'quality': 'consensus' or a metric name"}),
        ({"name": "x", "select": {"quality_key": "ifd"}},
         {"select.quality_key": "is only used with method 'quality' or 'diversity' (method is 'random')"}),
        ({"name": "x", "select": {"method": "diversity", "quality_key": "ifd", "diversity": {"method": "threshold"}}},
         {"select.diversity.threshold": "is required with diversity method 'threshold': a cosine similarity in (0, 1]"}),
        ({"name": "x", "select": {"method": "diversity", "quality_key": "ifd", "diversity": {"method": "threshold", "threshold": 0}}},
         {"select.diversity.threshold": "must be greater than 0, got 0"}),
        ({"name": "x", "select": {"method": "diversity", "diversity": {"method": "threshold", "threshold": 0.8}}},
         {"select.quality_key": "is required with diversity method 'threshold' (candidates are taken best first)"}),
        ({"name": "x", "select": {"method": "random", "diversity": {"method": "k_center"}}},
         {"select.diversity": "is only used with method 'diversity' (method is 'random')"}),
        ({"name": "x", "size": 0}, {"size": "must be at least 1, got 0"}),
        ({"name": "x", "size": True}, {"size": "must be a whole number, got True"}),
        ({"name": "x", "split": {"validation": 0.7}}, {"split.validation": "must be at most 0.5, got 0.7"}),
        ({"name": "x", "split": {"validation": -3}}, {"split.validation": "must be at least 0, got -3"}),
        ({"name": "x", "split": {"validation": "10%"}}, {"split.validation": "must be a fraction in [0, 0.5] or a whole count, got '10%'"}),
        ({"name": "x", "seed": -1}, {"seed": "must be at least 0, got -1"}),
        ({"name": "x", "system_prompt": 5}, {"system_prompt": "must be text"}),
    ],
)
def test_each_mistake_is_named_by_its_path(data, expected):
    assert errors_of(data) == expected


def test_every_mistake_is_reported_at_once():
    errors = errors_of({"formats": ["csv"], "size": -2, "split": {"validation": 0.9}, "select": {"method": "quality"}})
    assert errors == {
        "name": "is required",
        "formats[0]": "must be one of messages, prompt_completion, alpaca, sharegpt, parquet, got 'csv'",
        "size": "must be at least 1, got -2",
        "split.validation": "must be at most 0.5, got 0.9",
        "select.quality_key": "is required with method 'quality': 'consensus' or a metric name",
    }


def test_a_non_object_is_refused_and_the_error_reads_as_text():
    with pytest.raises(SpecError) as info:
        spec_parse(["name"])
    assert info.value.errors == {"spec": "must be an object"}
    assert str(info.value) == "spec: must be an object"


def test_a_count_for_validation_is_kept_as_a_count():
    spec = spec_parse({"name": "x", "split": {"validation": 200, "seed": 3}})
    assert spec.split == Split(validation=200, seed=3)
    assert isinstance(spec.split.validation, int)


def test_counts_may_name_the_size_they_add_up_to():
    spec = spec_parse({"name": "x", "size": 6, "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 3, "code": 3}}})
    assert spec.balance.counts == (("code", 3), ("qa", 3))


def test_stratum_keys_join_the_values_in_order():
    assert stratum_key(["qa", "hard"]) == "qa/hard"
    assert stratum_key(["qa", None, " ", "a/b"]) == "qa/-/-/a_b"
    assert stratum_key([7]) == "7"
    assert stratum_key([]) == "all"
    assert stratum_key_for(("language", "task_type"), {"task_type": "qa", "language": "de", "cluster": 3}) == "de/qa"


def test_the_pure_modules_import_without_django():
    # given a clean interpreter with no Django settings
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = "import sys, exports.spec, exports.selection, exports.formats; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    # when the three modules are imported
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=True)
    # then nothing from Django was loaded
    assert out.stdout.strip() == "[]"
