"""Conciseness and clarity: lengths against the cluster median, structure, exact reasons."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.metrics import conciseness as cc
from scoring.metrics.base import Flag


def words(n: int, prefix: str = "w") -> str:
    """n distinct one-token words on one line, no sentence end: n tokens."""
    return " ".join(f"{prefix}{i}" for i in range(n))


def paragraphs(sentences: int, per_paragraph: int = 6) -> str:
    """Distinct six-token sentences in paragraphs: a well-structured answer of 6 x sentences tokens."""
    lines = [f"Point number {i} is made here." for i in range(sentences)]
    return "\n\n".join(" ".join(lines[p : p + per_paragraph]) for p in range(0, sentences, per_paragraph))


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, world 42", 3),
        ("机器学习 is fun", 6),
        ("don't stop", 2),
        ("snake_case x", 2),
        ("café au lait", 3),
        ("今天天气很好。", 6),
        ("", 0),
        ("... --- !!!", 0),
    ],
)
def test_count_tokens(text, tokens):
    assert cc.count_tokens(text) == tokens


def test_verbose_answer_reason_names_cluster_and_median():
    # given four answers of 120 tokens and a well-structured one of 504 tokens, all in cluster 7
    verbose = paragraphs(84)
    answers = [words(120, "a"), words(120, "b"), words(120, "c"), words(120, "d"), verbose]
    # when
    results = cc.conciseness_results(answers, [7] * 5)
    # then only the long one is verbose, and its clarity is intact
    last = results[-1]
    assert last.flags == [Flag("verbose", "answer is 4.2x the median length of similar instructions (cluster 7, median 120 tokens)")]
    assert last.value == pytest.approx(round(1.5 / 4.2, 4))
    assert last.details == {
        "tokens": 504,
        "cluster": 7,
        "cluster_median": 120.0,
        "cluster_size": 5,
        "ratio": 4.2,
        "length_score": round(1.5 / 4.2, 4),
        "clarity": 1.0,
        "clarity_issues": [],
    }
    assert all(not any(f.rule == "verbose" for f in r.flags) for r in results[:4])


def test_long_ratio_but_few_tokens_is_not_verbose():
    # 4x the median but under 200 tokens
    answers = [words(40)] * 4 + [paragraphs(27)]  # 162 tokens
    result = cc.conciseness_results(answers, [1] * 5)[-1]
    assert result.details["ratio"] == pytest.approx(4.05)
    assert result.flags == []


def test_terse_answer():
    answers = [paragraphs(20)] * 4 + ["Yes, it is ten tokens long in the end."]
    results = cc.conciseness_results(answers, np.array([3] * 5))
    terse = results[-1]
    assert terse.details["cluster_median"] == 120.0
    assert terse.details["tokens"] == 9
    assert terse.flags == [
        Flag("terse", "answer is 0.07x the median length of similar instructions (cluster 3, median 120 tokens): 9 tokens")
    ]
    assert terse.value == pytest.approx(round((9 / 120) / 0.2, 4))


def test_terse_needs_a_cluster_median_of_50():
    answers = [words(40)] * 4 + ["Yes"]
    assert cc.conciseness_results(answers, [0] * 5)[-1].flags == []


def test_small_or_missing_clusters_give_no_ratio():
    answers = [words(10)] * 3 + [paragraphs(100)]
    results = cc.conciseness_results(answers, [2, 2, 2, 2])  # 4 < min_cluster_size
    assert [r.details["ratio"] for r in results] == [None] * 4
    assert all(not r.flags for r in results)
    alone = cc.conciseness_results(["short answer"], [None])[0]
    assert alone.details["cluster"] is None and alone.details["ratio"] is None
    assert alone.value == 1.0
    with pytest.raises(ValueError):
        cc.conciseness_results(["a"], [1, 2])


def test_configurable_thresholds():
    config = cc.ConcisenessConfig(verbose_ratio=1.5, verbose_min_tokens=10, min_cluster_size=2)
    results = cc.conciseness_results([words(20), words(20), paragraphs(8)], [5, 5, 5], config)
    assert results[-1].flags == [Flag("verbose", "answer is 2.4x the median length of similar instructions (cluster 5, median 20 tokens)")]


def test_median_shown_with_a_decimal_when_needed():
    answers = [words(100)] * 3 + [words(101)] * 2 + [paragraphs(84)] + [words(101)]
    # lengths 100,100,100,101,101,504,101 -> median 101; make an even count for a .5 median
    answers = answers[:-1]  # 100,100,100,101,101,504 -> median 100.5
    result = cc.conciseness_results(answers, [9] * 6)[-1]
    assert result.flags[0].reason == "answer is 5.0x the median length of similar instructions (cluster 9, median 100.5 tokens)"


# --------------------------------------------------------------------------------------------------
# Clarity


def test_clarity_of_a_wall_of_text():
    wall = " ".join(f"Sentence {i} has exactly six tokens." for i in range(50))
    result = cc.clarity(wall)
    assert result.score == 0.7
    assert result.issues == ["a 300-token answer in one block, with no paragraphs, lists or headings"]


def test_clarity_of_a_structured_long_answer():
    listed = "Here is how:\n" + "\n".join(f"- Step {i} is done like this carefully." for i in range(50))
    assert cc.clarity(listed).score == 1.0
    assert cc.clarity(paragraphs(50)).issues == []


def test_clarity_of_very_long_plain_paragraphs():
    answer = paragraphs(150)  # 900 tokens, paragraphs but no list or heading
    result = cc.clarity(answer)
    assert result.score == 0.9
    assert result.issues == ["a 900-token answer with no lists or headings"]


def test_very_long_sentences_lower_clarity():
    long = "This " + "very " * 70 + "long sentence ends here. Short one."
    result = cc.clarity(long)
    assert result.issues == ["1 very long sentence (over 60 tokens, longest 75)"]
    assert result.score == pytest.approx(round(1 - 0.4 * 75 / 77, 4))


def test_low_clarity_and_repetitive_flags():
    # given a 300-token block whose sentences repeat
    answer = " ".join(["The same point is made again here."] * 30 + [f"Then point {i} follows it now." for i in range(20)])
    result = cc.conciseness(answer)
    assert result.details["clarity_issues"] == [
        "a 330-token answer in one block, with no paragraphs, lists or headings",
        "29 repeated sentences of 50",
    ]
    assert result.details["clarity"] == 0.2
    assert result.flags == [
        Flag(
            "low_clarity",
            "clarity 0.20 < 0.60: a 330-token answer in one block, with no paragraphs, lists or headings; 29 repeated sentences of 50",
        ),
        Flag("repetitive", "29 of 50 sentences repeat an earlier sentence"),
    ]
    assert result.value == 0.2


def test_short_repeats_and_code_blocks_are_not_penalized():
    answer = "Yes.\nYes.\n```python\n" + "\n".join(f"x{i} = {i} + {i} * {i} - {i} / {i} + {i} ** {i}" for i in range(40)) + "\n```\nDone."
    result = cc.clarity(answer)
    assert result.issues == []
    assert result.score == 1.0


def test_chinese_answer_counts_characters():
    answer = "机器学习是人工智能的一个分支。它让计算机从数据中学习。"
    result = cc.conciseness(answer, cluster=1, cluster_median=13.0, cluster_size=10)
    assert result.details["tokens"] == 25  # 14 + 11 characters
    assert result.details["ratio"] == pytest.approx(round(25 / 13, 4))
    assert result.flags == []
    assert result.value == pytest.approx(round(1.5 / (25 / 13), 4))
