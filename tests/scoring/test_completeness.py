"""Completeness: asks split from instructions (English, Chinese), sentences, coverage on hand-built vectors."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.metrics import completeness as cp
from scoring.metrics.base import Flag

# --------------------------------------------------------------------------------------------------
# split_asks


@pytest.mark.parametrize(
    ("instruction", "asks"),
    [
        # joined requests
        ("请解释什么是机器学习，并举一个例子。", ["请解释什么是机器学习", "举一个例子"]),
        ("Explain what machine learning is and give an example.", ["Explain what machine learning is", "give an example"]),
        ("What is machine learning and give an example", ["What is machine learning", "give an example"]),
        (
            "Write a short story about a dog, and then summarize it in one sentence.",
            ["Write a short story about a dog", "summarize it in one sentence"],
        ),
        (
            "Explain how a neural network learns, list the main components, and describe one application.",
            ["Explain how a neural network learns", "list the main components", "describe one application"],
        ),
        ("写一首关于春天的诗，描述春天的美景。", ["写一首关于春天的诗", "描述春天的美景"]),
        ("解释区块链的原理以及分析它的优缺点", ["解释区块链的原理", "分析它的优缺点"]),
        ("介绍一下长城，同时说明它的历史意义。", ["介绍一下长城", "说明它的历史意义"]),
        ("总结这篇文章，还要给出你的评价。", ["总结这篇文章", "给出你的评价"]),
        ("机器学习是什么？请举例说明，并比较它与深度学习的区别。", ["机器学习是什么？", "请举例说明", "比较它与深度学习的区别"]),
        # numbered and lettered items
        (
            "1. What is Python? 2. Why is it popular? 3. How do I install it?",
            ["What is Python?", "Why is it popular?", "How do I install it?"],
        ),
        ("Answer the following questions:\n1. What is an atom?\n2. What is a molecule?", ["What is an atom?", "What is a molecule?"]),
        ("1) Sort the list\n2) Remove duplicates\n3) Print it", ["Sort the list", "Remove duplicates", "Print it"]),
        ("(1) 什么是量子计算？(2) 它有哪些应用？", ["什么是量子计算？", "它有哪些应用？"]),
        ("1、介绍公司背景 2、说明产品优势", ["介绍公司背景", "说明产品优势"]),
        ("一、介绍长城的历史；二、说明它的文化意义；三、推荐一条游览路线。", ["介绍长城的历史", "说明它的文化意义", "推荐一条游览路线"]),
        ("第一，解释什么是区块链；第二，分析它的优缺点。", ["解释什么是区块链", "分析它的优缺点"]),
        ("a) Define entropy. b) Give its formula.", ["Define entropy", "Give its formula"]),
        # bullets
        ("- Explain recursion with care\n- Give an example in Python", ["Explain recursion with care", "Give an example in Python"]),
        # several questions
        ("What is photosynthesis? Why is it important?", ["What is photosynthesis?", "Why is it important?"]),
        ("你好吗？今天天气怎么样？", ["你好吗？", "今天天气怎么样？"]),
    ],
)
def test_split_asks_finds_every_ask(instruction, asks):
    assert cp.split_asks(instruction) == asks


@pytest.mark.parametrize(
    "instruction",
    [
        "Provide three tips for staying healthy.",
        "Explain the difference between a list and a tuple in Python.",
        "Compare and contrast cats and dogs.",
        "Define entropy and explain.",
        "Describe the water cycle. Use simple words.",
        "Translate the sentence into French. The sentence is: I like cats.",
        "Please read the passage and answer the question.",
        "第一次和第二次世界大战有什么区别？",
        "请介绍一下北京以及上海的历史。",
        "还原这段代码的功能。",
        # lists that are data, not asks
        "Sort the following words:\n- apple\n- banana\n- cherry",
        "Summarize the text.\n\n1. The economy grew by 3 percent last year. 2. Unemployment fell to a record low.",
        "Python 3. Version 2.",
    ],
)
def test_split_asks_single_ask_is_the_instruction(instruction):
    assert cp.split_asks(instruction) == [instruction]


def test_split_asks_of_empty_text():
    assert cp.split_asks("") == []
    assert cp.split_asks("  \n ") == []


# --------------------------------------------------------------------------------------------------
# split_sentences


def test_split_sentences_english():
    text = "Machine learning is a field of AI. It learns from data, e.g. the spam filter! Really?\nPi is 3.14 and that is it. Done"
    assert cp.split_sentences(text) == [
        "Machine learning is a field of AI.",
        "It learns from data, e.g. the spam filter!",
        "Really?",
        "Pi is 3.14 and that is it.",
        "Done",
    ]


def test_split_sentences_list_markers_but_not_numbers_at_line_start():
    text = "3.14 is pi. Next.\nA. The first option.\nb) second thing\n2) third thing\n1.5 apples"
    assert cp.split_sentences(text) == ["3.14 is pi.", "Next.", "The first option.", "second thing", "third thing", "1.5 apples"]


def test_split_sentences_chinese():
    assert cp.split_sentences("机器学习是人工智能的一个分支。它从数据中学习！对吗？好的") == [
        "机器学习是人工智能的一个分支。",
        "它从数据中学习！",
        "对吗？",
        "好的",
    ]
    assert cp.split_sentences("他说：“你好！”然后走了。") == ["他说：“你好！”", "然后走了。"]


def test_split_sentences_keeps_code_blocks_whole_and_drops_markup():
    text = "# Title\n\nSteps:\n- First item here.\n1. Second item.\n---\n```python\nprint('a. B')\n\nx = 1\n```\nAfter code."
    assert cp.split_sentences(text) == [
        "Title",
        "Steps:",
        "First item here.",
        "Second item.",
        "```python\nprint('a. B')\n\nx = 1\n```",
        "After code.",
    ]
    assert cp.split_sentences("") == []
    assert cp.split_sentences("~~~\nunclosed block\nstill code") == ["~~~\nunclosed block\nstill code"]


# --------------------------------------------------------------------------------------------------
# completeness


def basis(*idx: int, d: int = 8) -> np.ndarray:
    return np.eye(d, dtype=np.float32)[list(idx)]


def test_all_asks_covered():
    result = cp.completeness(["Explain X", "give an example"], basis(0, 1), basis(2, 1, 0))
    assert result.name == "completeness"
    assert result.value == 1.0
    assert result.flags == []
    assert result.details == {"asks": 2, "covered": 2, "best": [1.0, 1.0], "uncovered": []}


def test_uncovered_ask_is_named_with_its_best_cosine():
    # the answer's sentence is close to ask 0 (cos 0.8) and far from ask 1 (cos 0.2)
    sentence = np.array([[0.8, 0.2, np.sqrt(1 - 0.68), 0, 0, 0, 0, 0]], dtype=np.float32)
    result = cp.completeness(["请解释什么是机器学习", "举一个例子"], basis(0, 1), sentence)
    assert result.value == 0.5
    assert result.flags == [Flag("incomplete", "answer covers 1 of 2 asks; not covered: '举一个例子' (best cosine 0.20)")]
    assert result.details["covered"] == 1
    assert result.details["uncovered"] == [1]
    assert result.details["best"] == [0.8, 0.2]


def test_reason_lists_every_uncovered_ask_shortened_to_60_characters():
    long_ask = "describe in detail every single step of the process that turns sunlight into sugar"
    result = cp.completeness(["Explain X", long_ask, "list three examples"], basis(0, 1, 2), basis(0))
    assert result.value == pytest.approx(0.3333)
    shown = long_ask[:59] + "…"
    assert len(shown) == 60
    assert result.flags == [
        Flag(
            "incomplete", f"answer covers 1 of 3 asks; not covered: '{shown}' (best cosine 0.00), 'list three examples' (best cosine 0.00)"
        )
    ]


def test_threshold_is_inclusive_and_configurable():
    sentence = np.array([[0.6, 0.8, 0, 0, 0, 0, 0, 0]], dtype=np.float32)
    assert cp.completeness(["a", "b"], basis(0, 1), sentence, threshold=0.6).value == 1.0
    assert cp.completeness(["a", "b"], basis(0, 1), sentence, threshold=0.7).value == 0.5
    assert cp.DEFAULT_THRESHOLD == 0.3


def test_single_ask_has_no_value_and_no_flag():
    result = cp.completeness(["Write a poem"], basis(0), basis(3))
    assert result.value is None
    assert result.flags == []
    assert result.details == {"asks": 1, "covered": 0, "best": [0.0], "uncovered": [0]}


def test_empty_answer_covers_nothing():
    result = cp.completeness(["Explain X", "give an example"], basis(0, 1), np.zeros((0, 8), dtype=np.float32))
    assert result.value == 0.0
    assert result.flags == [Flag("incomplete", "answer has no sentences; not covered: 'Explain X', 'give an example'")]
    assert result.details == {"asks": 2, "covered": 0, "best": [None, None], "uncovered": [0, 1]}


def test_asks_without_texts_are_numbered():
    result = cp.completeness(None, basis(0, 1), basis(1))
    assert result.flags == [Flag("incomplete", "answer covers 1 of 2 asks; not covered: 'ask 1' (best cosine 0.00)")]


def test_mismatched_inputs_are_errors():
    with pytest.raises(ValueError):
        cp.completeness(["a"], basis(0, 1), basis(0))
    with pytest.raises(ValueError):
        cp.completeness(["a", "b"], basis(0, 1), np.ones((2, 3), dtype=np.float32))
