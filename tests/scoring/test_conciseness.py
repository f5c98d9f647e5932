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


def test_markup_lines_are_code_not_repeated_prose():
    rows = "\n".join(f"&lt;tr&gt;\n  &lt;td&gt;语言{i}&lt;/td&gt;\n  &lt;td&gt;国家{i}&lt;/td&gt;\n&lt;/tr&gt;" for i in range(8))
    for table in (f"&lt;table&gt;\n{rows}\n&lt;/table&gt;", f"<table>\n{rows.replace('&lt;', '<').replace('&gt;', '>')}\n</table>"):
        assert cc.clarity(table).repeated == 0
        assert cc.conciseness(table, cluster=None, cluster_median=None, cluster_size=0).flags == []


SONG = """Verse 1:
I wake up every morning with the sun upon my face,
and I run along the river at a steady, easy pace.

Chorus:
We keep on moving, moving on the open road tonight,
we keep on singing, singing till the morning light,
nothing ever stops us when the stars are shining bright.

Verse 2:
The city lights are calling and the night is young and wide,
I carry all my friends with me and all my hopes inside.

Chorus:
We keep on moving, moving on the open road tonight,
we keep on singing, singing till the morning light,
nothing ever stops us when the stars are shining bright."""

歌 = """第 1 节：
每天清晨我迎着阳光醒来，
沿着河边慢慢地奔跑。

合唱：
我们一直向前，走在今夜的大路上，
我们一直歌唱，唱到天亮，
星光闪耀时没有什么能阻挡我们。

第 2 节：
城市的灯光在呼唤，夜还很长，
我带着所有的朋友和希望。

合唱：
我们一直向前，走在今夜的大路上，
我们一直歌唱，唱到天亮，
星光闪耀时没有什么能阻挡我们。"""


@pytest.mark.parametrize("song", [SONG, 歌])
def test_a_songs_labelled_refrain_is_not_repetition(song):
    result = cc.clarity(song)
    assert result.repeated == 0 and result.issues == []
    # the same lines repeated without their label are repetition
    unlabelled = song.replace("Chorus:\n", "").replace("合唱：\n", "")
    assert cc.clarity(unlabelled).repeated == 3


def test_a_loop_of_chinese_sentences_is_still_repetitive():
    loop = ("Python 中的浅拷贝只复制对象的引用，不会复制嵌套对象。深拷贝会递归地复制对象以及嵌套对象。"
            + "在深拷贝中，对象的副本被复制到其他对象中。这意味着对副本所做的更改不会反映在原始对象中。" * 3)
    result = cc.conciseness(loop, cluster=None, cluster_median=None, cluster_size=0)
    assert result.flags == [Flag("low_clarity", "clarity 0.50 < 0.60: 4 repeated sentences of 8"),
                            Flag("repetitive", "4 of 8 sentences repeat an earlier sentence")]
