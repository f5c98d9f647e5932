"""Consistency: format and label checks inside groups of near-identical instructions, conflicts,
reference similarity and label-error candidates, on hand-built vectors."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.metrics import consistency as cs
from scoring.metrics.base import Flag


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(direction: int, count: int, d: int = 64, eps: float = 0.05, offset: int = 32) -> np.ndarray:
    """count unit vectors close to basis vector `direction` (pairwise cosine ~ 1 / (1 + eps^2) > 0.99)."""
    x = np.zeros((count, d), dtype=np.float32)
    x[:, direction] = 1.0
    x[np.arange(count), offset + np.arange(count)] = eps
    return unit_rows(x)


def rows_with_cosine(c: float, d: int = 8) -> np.ndarray:
    """Two unit vectors with cosine c."""
    return np.array([[1.0] + [0.0] * (d - 1), [c, np.sqrt(1 - c * c)] + [0.0] * (d - 2)], dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Answers as labels


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ('"Positive."', "positive"),
        ("  NEGATIVE ", "negative"),
        ("正面。", "正面"),
        ("(B)", "b"),
        ("Not  sure!", "not sure"),
        ("Ｙｅｓ", "yes"),
    ],
)
def test_normalize_answer(text, label):
    assert cs.normalize_answer(text) == label


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("Positive", "short"),
        ("New York City", "short"),
        ("It is very positive", "prose"),
        ("积极情绪的评论", "short"),
        ("这是一条非常积极的评论", "prose"),
        ("...", "prose"),
        ("", "prose"),
        ("1. good\n2. bad", "list"),
        ("- one\n- two\n- three", "list"),
        ("```python\nprint(1)\n```", "code"),
        ("yes\nno", "prose"),
        ("The movie was great and I liked it a lot.", "prose"),
    ],
)
def test_answer_format(text, fmt):
    assert cs.answer_format(text) == fmt


# --------------------------------------------------------------------------------------------------
# Groups


def test_instruction_groups_by_text_and_by_cosine():
    third = np.array([[0.94, 0.0, np.sqrt(1 - 0.94**2), 0, 0, 0, 0, 0]], dtype=np.float32)
    emb = np.vstack([rows_with_cosine(0.96), third, np.eye(8, dtype=np.float32)[[5, 5]]])
    # rows 0, 1: cosine 0.96 -> one group; row 2: cosine 0.94 with row 0, 0.90 with row 1 -> alone;
    # rows 3, 4 equal vectors
    texts = ["a", "b", "c", "d", "e"]
    assert cs.instruction_groups(texts, emb).tolist() == [0, 0, 2, 3, 3]
    # equal normalized texts join without embeddings
    assert cs.instruction_groups(["Say hi", "say hi", " Say  hi ", "Say hi"]).tolist() == [0, 1, 0, 0]


def test_similar_pairs_blocked_equals_brute_force():
    rng = np.random.default_rng(5)
    base = unit_rows(rng.standard_normal((6, 16)))
    x = unit_rows(np.repeat(base, 5, axis=0) + 0.05 * rng.standard_normal((30, 16)))
    brute = x @ x.T
    expected = [(i, j) for i in range(30) for j in range(i + 1, 30) if brute[i, j] >= np.float32(0.9)]
    for block in (4, 7, 4096):
        i, j, s = cs.similar_pairs(x, 0.9, block_size=block)
        assert list(zip(i.tolist(), j.tolist(), strict=True)) == expected
        assert np.allclose(s, brute[i, j], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Internal consistency


def test_format_deviation_names_the_majority():
    ids = [10, 11, 12, 13, 14, 15]
    instructions = [f"Classify the sentiment of review {i}." for i in range(6)]
    emb = near(0, 6)
    answers = ["positive", "negative", "positive", "negative", "1. good\n2. bad", "neutral"]
    results = cs.internal_consistency(ids, instructions, answers, emb)
    assert [r.flags for r in results[:4]] == [[], [], [], []]
    assert results[4].flags == [
        Flag(
            "format_deviation",
            "answer is a list where 5 of 6 samples with a near-identical instruction give a short answer (samples 10, 11, 12, 13, 15)",
        )
    ]
    assert results[4].value == 0.0
    assert results[0].value == 0.8
    assert results[4].details == {"group": 10, "group_size": 6, "format": "list", "label": None}
    assert results[0].details == {"group": 10, "group_size": 6, "format": "short", "label": "positive"}


def test_no_format_flag_without_a_clear_majority_or_in_small_groups():
    emb = near(0, 5)
    answers = ["yes", "no", "It is a longer sentence here.", "Another long sentence here.", "maybe"]  # 3 of 5 short: 60%
    flagged = [r.flags for r in cs.internal_consistency(list("abcde"), list("vwxyz"), answers, emb)]
    assert (
        flagged[2]
        == flagged[3]
        == [
            Flag(
                "format_deviation",
                "answer is prose where 3 of 5 samples with a near-identical instruction give a short answer (samples a, b, e)",
            )
        ]
    )
    answers = ["yes", "no", "It is a longer sentence here.", "Another long sentence here.", "- a list\n- of two"]  # 40% at most
    assert not any(r.flags for r in cs.internal_consistency(list("abcde"), list("vwxyz"), answers, emb))
    pair = cs.internal_consistency(["p", "q"], ["x", "y"], ["yes", "A long answer in prose."], near(0, 2))
    assert [r.flags for r in pair] == [[], []]
    assert [r.value for r in pair] == [0.0, 0.0]


def test_samples_alone_have_no_value():
    results = cs.internal_consistency([1, 2], ["a", "b"], ["yes", "no"], np.eye(4, dtype=np.float32)[:2])
    assert [(r.value, r.flags, r.details["group_size"]) for r in results] == [(None, [], 1), (None, [], 1)]
    assert results[1].details["group"] == 2


def test_label_outside_the_group_label_set():
    ids = list(range(100, 110))
    instructions = [f"Classify the sentiment: review {i}" for i in range(10)]
    answers = ["positive"] * 5 + ["Negative."] * 4 + ["mixed"]
    results = cs.internal_consistency(ids, instructions, answers, near(3, 10))
    assert [r.flags for r in results[:9]] == [[]] * 9
    assert results[9].flags == [
        Flag(
            "label_outside_set",
            "label 'mixed' is outside the labels of 10 samples with a near-identical instruction: 'positive' (5), 'negative' (4)",
        )
    ]


def test_free_short_answers_have_no_label_set():
    # names and numbers rarely repeat: no label set, no flags
    answers = ["Paris", "Madrid", "Rome", "Berlin", "Paris", "Lisbon", "Vienna", "Oslo", "Rome"]
    results = cs.internal_consistency(list(range(9)), [f"Capital of country {i}?" for i in range(9)], answers, near(1, 9))
    assert not any(r.flags for r in results)


def test_conflicting_answers_for_the_same_instruction_and_input():
    ids = [12, 40, 7, 3, 9]
    instructions = ["Is the review positive or negative?"] * 5
    inputs = ["I loved it.", "I loved it.", "I loved it.", "Terrible.", "Terrible."]
    answers = ["negative", "negative", "positive", "negative", "negative"]
    results = cs.internal_consistency(ids, instructions, answers, inputs=inputs)
    assert results[2].flags == [
        Flag("conflicting_answer", "answer 'positive' conflicts with 'negative' given by samples 12, 40 for the same instruction")
    ]
    assert results[0].flags == [
        Flag("conflicting_answer", "answer 'negative' conflicts with 'positive' given by sample 7 for the same instruction")
    ]
    assert results[3].flags == results[4].flags == []
    # the group is all five (same instruction text): formats agree, so no other flag
    assert [r.details["group_size"] for r in results] == [5] * 5


def test_conflicts_with_several_other_labels_and_long_answers_ignored():
    ids = ["a", "b", "c", "d", "e"]
    answers = ["yes", "no", "No.", "maybe", "Yes, because the text says so clearly and at length."]
    results = cs.internal_consistency(ids, ["Q?"] * 5, answers)
    assert results[0].flags[-1] == Flag(
        "conflicting_answer",
        "answer 'yes' conflicts with 'no' given by samples b, c and 'maybe' given by sample d for the same instruction",
    )
    assert all(f.rule != "conflicting_answer" for f in results[4].flags)


def test_internal_consistency_checks_inputs():
    with pytest.raises(ValueError):
        cs.internal_consistency([1, 1], ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError):
        cs.internal_consistency([1, 2], ["a", "b"], ["x"])
    with pytest.raises(ValueError):
        cs.internal_consistency([1, 2], ["a", "b"], ["x", "y"], np.zeros((3, 4), dtype=np.float32))


# --------------------------------------------------------------------------------------------------
# External consistency


def test_reference_similarity():
    a, b = rows_with_cosine(0.31)
    result = cs.reference_similarity(a, b)
    assert result.name == "reference_similarity"
    assert result.value == pytest.approx(0.31, abs=1e-4)
    assert result.flags == [Flag("far_from_reference", "answer is far from the reference answer: cosine 0.31 < 0.50")]
    close = cs.reference_similarity(*rows_with_cosine(0.8))
    assert close.value == pytest.approx(0.8, abs=1e-4)
    assert close.flags == []
    assert cs.reference_similarity(a, None).value is None
    assert cs.reference_similarity(a, None).flags == []
    assert cs.reference_similarity(*rows_with_cosine(0.75), threshold=0.8).flags == [
        Flag("far_from_reference", "answer is far from the reference answer: cosine 0.75 < 0.80")
    ]


# --------------------------------------------------------------------------------------------------
# Label-error candidates


def test_label_error_candidate_reason():
    # six near-identical inputs: five say A, one says B; two unrelated samples
    ids = [3, 8, 9, 12, 20, 31, 40, 41]
    emb = np.vstack([near(0, 6), np.eye(64, dtype=np.float32)[[5, 6]]])
    answers = ["A", "A", "A", "A", "B", "A", "B", "C"]
    results = cs.label_error_candidates(ids, emb, answers)
    assert results[4].flags == [
        Flag("label_error_candidate", "answer 'B' disagrees with 'A' given by 5 of 5 near-identical samples (ids 3, 8, 9, 12, 31)")
    ]
    assert results[4].value == 0.0
    assert results[4].details["majority_label"] == "a"
    assert results[4].details["majority_share"] == 1.0
    assert sorted(results[4].details["neighbours"]) == [3, 8, 9, 12, 31]
    assert [r.flags for r in results[:4]] == [[]] * 4
    assert results[0].value == 0.8
    assert results[6].value is None and results[7].value is None


def test_label_error_needs_a_majority_and_three_neighbours():
    emb = near(0, 6)
    # neighbours of the B sample: A A A B? no: labels A, A, C, C, B -> majority share 0.4
    answers = ["A", "A", "C", "C", "B", "D"]
    assert not any(r.flags for r in cs.label_error_candidates(list(range(6)), emb, answers))
    # three samples: each has two neighbours only
    few = cs.label_error_candidates([1, 2, 3], near(0, 3), ["A", "A", "B"])
    assert [r.value for r in few] == [None, None, None]


def test_label_error_majority_from_4_of_5_and_k():
    ids = list(range(1, 7))
    answers = ["B", "A", "A", "A", "A", "C"]
    results = cs.label_error_candidates(ids, near(0, 6), answers, k=10)
    assert results[0].flags == [
        Flag("label_error_candidate", "answer 'B' disagrees with 'A' given by 4 of 5 near-identical samples (ids 2, 3, 4, 5)")
    ]
    assert results[5].flags == [
        Flag("label_error_candidate", "answer 'C' disagrees with 'A' given by 4 of 5 near-identical samples (ids 2, 3, 4, 5)")
    ]
    # k=3: only the 3 nearest neighbours count
    assert len(cs.label_error_candidates(ids, near(0, 6), answers, k=3)[0].details["neighbours"]) == 3


def test_only_short_answers_take_part():
    answers = ["A", "A", "A", "A", "This is a long answer about B instead."]
    results = cs.label_error_candidates(list(range(5)), near(0, 5), answers)
    assert results[4].value is None
    assert [len(r.details["neighbours"]) for r in results[:4]] == [3, 3, 3, 3]


def test_input_threshold():
    emb = np.vstack([np.tile(rows_with_cosine(0.85)[:1], (4, 1)), rows_with_cosine(0.85)[1:]])
    answers = ["A", "A", "A", "A", "B"]
    assert cs.label_error_candidates(list(range(5)), emb, answers)[4].value is None
    assert cs.label_error_candidates(list(range(5)), emb, answers, input_threshold=0.8)[4].flags[0].rule == "label_error_candidate"


def brute_neighbours(x: np.ndarray, k: int, t: float) -> list[list[int]]:
    sims = x @ x.T
    out = []
    for i in range(len(x)):
        cands = [(-sims[i, j], j) for j in range(len(x)) if j != i and sims[i, j] >= np.float32(t)]
        out.append([j for _, j in sorted(cands)[:k]])
    return out


@pytest.mark.parametrize("block", [3, 5, 16, 4096])
def test_blocked_neighbours_equal_brute_force(block):
    rng = np.random.default_rng(11)
    base = unit_rows(rng.standard_normal((4, 12)))
    x = unit_rows(np.repeat(base, 6, axis=0) + 0.1 * rng.standard_normal((24, 12)))
    idx, sims = cs._top_neighbours(x, 4, 0.8, block)
    assert [row.tolist() for row in idx] == brute_neighbours(x, 4, 0.8)


def test_dense_tiles_take_the_sorted_path_with_the_same_result(monkeypatch):
    # forty identical rows: every pair is a hit, more than 8 x k per row for k = 1, so tiles are sorted
    x = np.tile(np.eye(6, dtype=np.float32)[:1], (40, 1))
    idx, _ = cs._top_neighbours(x, 1, 0.9, 16)
    assert [row.tolist() for row in idx] == [[1]] + [[0]] * 39
    rng = np.random.default_rng(4)
    y = unit_rows(np.repeat(rng.standard_normal((3, 8)), 12, axis=0) + 0.05 * rng.standard_normal((36, 8)))
    calls = {"sorted": 0}
    real_argsort = np.argsort

    def counting_argsort(*args, **kwargs):
        calls["sorted"] += 1
        return real_argsort(*args, **kwargs)

    monkeypatch.setattr(cs.np, "argsort", counting_argsort)
    monkeypatch.setattr(cs, "_DENSE_HITS_PER_ROW", 10**9)
    sparse, _ = cs._top_neighbours(y, 3, 0.8, 8)
    assert calls["sorted"] == 0
    monkeypatch.setattr(cs, "_DENSE_HITS_PER_ROW", 0)
    dense, _ = cs._top_neighbours(y, 3, 0.8, 8)
    assert calls["sorted"] > 0
    assert [r.tolist() for r in dense] == [r.tolist() for r in sparse] == brute_neighbours(y, 3, 0.8)
    answers = ["A"] * 39 + ["B"]
    results = cs.label_error_candidates(list(range(40)), x, answers, k=5, block_size=16)
    assert results[39].flags == [
        Flag("label_error_candidate", "answer 'B' disagrees with 'A' given by 5 of 5 near-identical samples (ids 0, 1, 2, 3, 4)")
    ]


def test_results_are_deterministic():
    rng = np.random.default_rng(2)
    x = unit_rows(np.repeat(rng.standard_normal((5, 8)), 8, axis=0) + 0.05 * rng.standard_normal((40, 8)))
    answers = [str(rng.choice(["A", "B"], p=[0.8, 0.2])) for _ in range(40)]
    first = cs.label_error_candidates(list(range(40)), x, answers, block_size=7)
    second = cs.label_error_candidates(list(range(40)), x, answers, block_size=4096)
    assert [(r.value, r.flags, r.details) for r in first] == [(r.value, r.flags, r.details) for r in second]
