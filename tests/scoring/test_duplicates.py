"""Duplicate detection (scoring.metrics.duplicates): pure Python + NumPy, no database."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from scoring.metrics import duplicates as dup
from scoring.metrics.duplicates import (
    DuplicateConfig,
    DuplicateGroup,
    NearDuplicateStats,
    duplicate_results,
    exact_groups,
    group_results,
    jaccard,
    near_duplicate_groups,
    semantic_duplicate_groups,
    shingles,
)

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------------
# Synthetic corpora: distinct paragraphs from seeded generators, and planted near-duplicates.

_SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
_PUNCT_ZH = "，。、；"


def _english_vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def _chinese_characters(rng: random.Random, size: int = 1500) -> list[str]:
    return [chr(0x4E00 + k) for k in sorted(rng.sample(range(0x5000), size))]


def _english_paragraph(rng: random.Random, vocabulary: list[str]) -> list[str]:
    return [rng.choice(vocabulary) for _ in range(rng.randint(60, 90))]


def _chinese_paragraph(rng: random.Random, characters: list[str]) -> list[str]:
    out = []
    for _ in range(rng.randint(150, 240)):
        out.append(rng.choice(_PUNCT_ZH) if rng.random() < 0.06 else rng.choice(characters))
    return out


def _edit(rng: random.Random, tokens: list[str], rate: float, pool: list[str]) -> list[str]:
    """Replace, delete or insert about `rate` of the tokens, at random places."""
    tokens = list(tokens)
    for _ in range(max(2, round(rate * len(tokens)))):
        k = rng.randrange(len(tokens))
        op = rng.choice(("replace", "delete", "insert"))
        if op == "replace":
            tokens[k] = rng.choice(pool)
        elif op == "delete":
            del tokens[k]
        else:
            tokens.insert(k, rng.choice(pool))
    return tokens


def _corpus(seed: int = 7, distinct: int = 300, planted: int = 50):
    """(items, planted pairs). 300 distinct English and 300 distinct Chinese paragraphs; for 50 of each,
    a near-duplicate made by small edits (English: 3-5% of words; Chinese: 1-2% of characters,
    since one character edit changes 5 character 5-grams and 3% already gives Jaccard ~0.74), placed
    at a random later position. Ids are strings like 'en-12' and 'zh-7-dup'."""
    rng = random.Random(seed)
    vocabulary = _english_vocabulary(rng)
    characters = _chinese_characters(rng)
    items: list[tuple[str, str]] = []
    planted_pairs: list[tuple[str, str]] = []
    for lang in ("en", "zh"):
        bases = []
        for k in range(distinct):
            tokens = _english_paragraph(rng, vocabulary) if lang == "en" else _chinese_paragraph(rng, characters)
            bases.append((f"{lang}-{k}", tokens))
        items.extend((i, (" " if lang == "en" else "").join(t)) for i, t in bases)
        for i, tokens in rng.sample(bases, planted):
            if lang == "en":
                edited = " ".join(_edit(rng, tokens, rng.uniform(0.03, 0.05), vocabulary))
            else:
                edited = "".join(_edit(rng, tokens, rng.uniform(0.01, 0.02), characters))
            planted_pairs.append((i, f"{i}-dup"))
            items.append((f"{i}-dup", edited))
    # shuffle, but keep every original before its near-duplicate so the representative is known
    rng.shuffle(items)
    position = {i: k for k, (i, _) in enumerate(items)}
    for base, copy in planted_pairs:
        if position[copy] < position[base]:
            a, b = position[base], position[copy]
            items[a], items[b] = items[b], items[a]
            position[base], position[copy] = b, a
    return items, planted_pairs


@pytest.fixture(scope="module")
def corpus():
    return _corpus()


@pytest.fixture(scope="module")
def near(corpus):
    items, _ = corpus
    stats = NearDuplicateStats()
    return near_duplicate_groups(items, DuplicateConfig(), stats=stats), stats


# --------------------------------------------------------------------------------------------------
# Shingles and MinHash signatures


def test_shingles_are_character_ngrams_of_normalized_lower_case_text():
    assert shingles("Hello", 5) == {"hello"}
    assert shingles("ＨＥＬＬＯ  World", 5) == shingles("hello world", 5)  # NFKC, whitespace, case
    assert shingles("abc", 5) == {"abc"}  # shorter than n: the whole text is one shingle
    assert shingles("  \n ", 5) == set()
    assert shingles("你好世界，今天", 5) == {"你好世界,", "好世界,今", "世界,今天"}  # NFKC: full-width comma -> ','
    assert shingles("你好世界今天", 5) == {"你好世界今", "好世界今天"}
    assert shingles("abcdef", 3) == {"abc", "bcd", "cde", "def"}


@pytest.mark.parametrize("text", ["The quick brown fox jumps over the lazy dog.", "今天天气很好，我们去公园散步吧。", "abc", "🙂 emoji ok"])
def test_signatures_are_those_of_datasketch_minhash(text):
    config = DuplicateConfig()
    prepared = dup.prepare_text(text)
    ours = dup._signatures([prepared, "some other text in the same batch"], config.ngram, dup._permutations(config))[0]
    reference = MinHash(num_perm=config.num_perm, seed=config.seed, hashfunc=lambda h: h)
    reference.update_batch(dup.minhash_input_hashes(text, config.ngram))
    assert reference.scheme == "affine32"
    assert np.array_equal(ours, reference.hashvalues)


def test_fingerprint_jaccard_equals_string_set_jaccard(corpus):
    items, pairs = corpus
    text = dict(items)
    n = DuplicateConfig().ngram
    for a, b in pairs[:20] + [(items[0][0], items[1][0])]:
        fa, fb = dup._fingerprints([dup.prepare_text(text[a]), dup.prepare_text(text[b])], n)
        assert fa.size == len(shingles(text[a], n)) and fb.size == len(shingles(text[b], n))
        assert dup._sorted_jaccard(fa, fb) == pytest.approx(jaccard(shingles(text[a], n), shingles(text[b], n)))


def test_lsh_bands_keep_a_pair_at_the_threshold_a_candidate_with_the_wanted_probability():
    config = DuplicateConfig()
    b, r = config.lsh_bands()
    assert b * r <= config.num_perm
    assert 1 - (1 - config.threshold**r) ** b >= config.lsh_recall
    assert 1 - (1 - config.threshold ** (r + 1)) ** (config.num_perm // (r + 1)) < config.lsh_recall  # the most rows that do
    assert DuplicateConfig(lsh_params=(16, 8)).lsh_bands() == (16, 8)
    with pytest.raises(ValueError):
        DuplicateConfig(lsh_params=(20, 8)).lsh_bands()
    with pytest.raises(ValueError):
        DuplicateConfig(threshold=0)


# --------------------------------------------------------------------------------------------------
# Exact duplicates


def test_exact_groups_by_normalized_text_with_first_id_as_representative():
    items = [
        (1, "Hello world"),
        ("b", "Ｈｅｌｌｏ\u3000world"),  # full-width letters and ideographic space: NFKC -> "Hello world"
        (3, "something else"),
        (4, "  Hello\n\tworld  "),
        (5, "hello world"),  # case differs: not an exact duplicate
        (6, "Something  else"),
        (7, "a lonely one"),
        (8, "something else "),
    ]
    assert exact_groups(items) == [[1, "b", 4], [3, 8]]
    assert exact_groups(iter(items)) == exact_groups(items)  # any iterable
    with pytest.raises(ValueError, match="appears twice"):
        exact_groups([(1, "a"), (1, "b")])


def test_exact_results_name_the_representative():
    results = group_results(exact_groups([(10, "x y"), (11, "x  y"), (12, "x\ny"), (13, "z")]), "exact", ids=[10, 11, 12, 13])
    assert results[10].value == 3 and not results[10].flagged
    assert results[10].details == {"representative": 10, "group_size": 3, "duplicates": [11, 12]}
    assert results[11].flags[0].rule == "exact_duplicate"
    assert results[11].flags[0].reason == "exact duplicate of sample 10"
    assert results[12].details == {"representative": 10, "group_size": 3, "matched": 10}
    assert results[13].value == 1 and not results[13].flagged
    assert {r.name for r in results.values()} == {"exact_duplicate"}


# --------------------------------------------------------------------------------------------------
# Near-duplicates


def test_planted_near_duplicates_are_found_and_distinct_paragraphs_are_not_grouped(corpus, near):
    items, planted = corpus
    groups, stats = near
    text = dict(items)
    threshold = DuplicateConfig().threshold
    true_jaccard = {pair: jaccard(shingles(text[pair[0]]), shingles(text[pair[1]])) for pair in planted}
    expected = {pair for pair, j in true_jaccard.items() if j >= threshold}
    # the edits are small enough that nearly all planted pairs really are near-duplicates at 0.8
    for lang in ("en", "zh"):
        assert sum(1 for (a, _) in expected if a.startswith(lang)) >= 45

    found = set()
    for g in groups:
        members = set(g.ids)
        # precision: a group never mixes distinct paragraphs; only an original and its own edit
        assert len({i.removesuffix("-dup") for i in members}) == 1, g
        assert g.size == 2
        found.add((g.representative, g.members[0][0]))
    recall = len(found & expected) / len(expected)
    assert recall >= 0.95
    assert found <= set(planted)
    # every found pair really is above the threshold (verified, not estimated)
    for pair in found:
        assert true_jaccard[pair] >= threshold
    assert stats.samples == len(items) and stats.indexed == len(items)
    assert stats.groups == len(groups)


def test_near_duplicate_members_name_the_matched_sample_with_the_exact_jaccard(corpus, near):
    items, _ = corpus
    groups, _ = near
    text = dict(items)
    position = {i: k for k, (i, _) in enumerate(items)}
    results = group_results(groups, "near")
    for g in groups:
        (member, matched, score), = g.members
        assert matched == g.representative
        assert position[g.representative] < position[member]  # the representative comes first in input order
        exact = jaccard(shingles(text[member]), shingles(text[matched]))
        assert score == pytest.approx(exact)
        flag = results[member].flags[0]
        assert flag.rule == "near_duplicate"
        shown = math.floor(exact * 100 + 1e-4) / 100
        assert flag.reason == f"near-duplicate of sample {matched}, Jaccard {shown:.2f}"
        assert results[member].details == {"representative": matched, "group_size": 2, "matched": matched, "jaccard": round(exact, 4)}
        assert results[matched].value == 2 and not results[matched].flagged
        json.dumps(results[member].details)  # storable as JSON as it is


def test_near_duplicates_identical_texts_chains_and_empty_texts():
    rng = random.Random(3)
    vocabulary = _english_vocabulary(rng, 500)
    base = _english_paragraph(rng, vocabulary)
    step1 = list(base)
    step2 = list(base)
    for k in range(0, 12, 3):
        step1[10 + k] = "zzq"
    for k in range(0, 24, 3):
        step2[10 + k] = "zzq"  # step2 is closer to step1 than to base
    other = " ".join(_english_paragraph(rng, vocabulary))
    items = [
        ("base", " ".join(base)),
        ("other", other),
        ("step2", " ".join(step2)),
        ("same", "  " + " ".join(base).upper()),  # same prepared text as base
        ("step1", " ".join(step1)),
        ("empty1", ""),
        ("empty2", "   "),
    ]
    t = dict(items)
    j = {(a, b): jaccard(shingles(t[a]), shingles(t[b])) for a in t for b in t}
    assert j["base", "step1"] >= 0.8 and j["step1", "step2"] >= 0.8 and j["base", "step2"] < 0.8

    groups = near_duplicate_groups(items)
    assert len(groups) == 1
    g = groups[0]
    assert g.representative == "base"
    assert g.members == [
        ("step2", "step1", pytest.approx(j["step1", "step2"])),  # not similar enough to base: names its neighbour
        ("same", "base", 1.0),
        ("step1", "base", pytest.approx(j["base", "step1"])),
    ]
    reasons = {m: r.flags[0].reason for m, r in group_results(groups, "near").items() if r.flagged}
    assert reasons["same"] == "near-duplicate of sample base, Jaccard 1.00"
    assert reasons["step2"].startswith("near-duplicate of sample step1, Jaccard 0.")


def test_a_big_cluster_of_near_duplicates_is_one_group_without_quadratic_verification():
    rng = random.Random(5)
    vocabulary = _english_vocabulary(rng, 800)
    base = _english_paragraph(rng, vocabulary)
    items = []
    for k in range(300):
        words = list(base)
        words[k % len(words)] = f"variant{k}"
        items.append((k, " ".join(words)))
    stats = NearDuplicateStats()
    groups = near_duplicate_groups(items, stats=stats)
    assert [g.size for g in groups] == [300]
    assert groups[0].representative == 0
    assert all(matched == 0 for _, matched, _ in groups[0].members)
    assert stats.verified_pairs < 2000  # not 300 * 299 / 2


def test_near_duplicate_ids_must_be_unique():
    with pytest.raises(ValueError, match="appears twice"):
        near_duplicate_groups([(1, "some text here"), (2, "other"), (1, "again")])


def test_near_duplicates_are_deterministic(corpus, near):
    items, _ = corpus
    groups, _ = near
    again = near_duplicate_groups(list(items), DuplicateConfig())
    assert again == groups
    other_seed = near_duplicate_groups(items, DuplicateConfig(seed=12345))
    assert other_seed == groups  # verified groups do not depend on the MinHash seed here


_SUBPROCESS = """
import json, sys
sys.path.insert(0, {root!r})
from scoring.metrics.duplicates import near_duplicate_groups
from tests.scoring.test_duplicates import _corpus
items, _ = _corpus(seed=11, distinct=60, planted=15)
groups = near_duplicate_groups(items)
assert not any(name == "django" or name.startswith("django.") for name in sys.modules), "imports Django"
print(json.dumps([[g.representative, g.members] for g in groups]))
"""


def test_same_groups_in_fresh_processes_with_different_string_hash_seeds_and_without_django():
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        run = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS.format(root=str(ROOT))], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        outputs.add(run.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop())  # and it found the planted pairs


_WITHOUT_DATASKETCH = """
import sys
sys.modules["datasketch"] = None  # as on a GPU box without it: importing it fails
sys.path.insert(0, {root!r})
import numpy as np
from scoring.metrics.duplicates import exact_groups, semantic_duplicate_groups
assert exact_groups([(1, "a b"), (2, "a  b")]) == [[1, 2]]
emb = np.eye(3, dtype=np.float32)[[0, 1, 0]]
assert [g.ids for g in semantic_duplicate_groups(["x", "y", "z"], emb)] == [["x", "z"]]
print("ok")
"""


def test_exact_and_semantic_duplicates_need_neither_django_nor_datasketch():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run([sys.executable, "-c", _WITHOUT_DATASKETCH.format(root=str(ROOT))], env=env, capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout.strip()) == (0, "ok"), run.stderr


# --------------------------------------------------------------------------------------------------
# Semantic duplicates


def _unit(d: int, parts: dict[int, float]) -> np.ndarray:
    v = np.zeros(d, dtype=np.float64)
    for k, x in parts.items():
        v[k] = x
    return v / np.linalg.norm(v)


def _rotated(d: int, axis_a: int, axis_b: int, cosine: float) -> np.ndarray:
    """A unit vector at the given cosine from e_{axis_a}, turned towards e_{axis_b}."""
    return _unit(d, {axis_a: cosine, axis_b: math.sqrt(1 - cosine**2)})


def _semantic_case(d: int = 64):
    """13 vectors with known cosines: pairs just above and just below 0.95, and a chain."""
    theta = math.acos(0.97)
    vectors = {
        "a": _unit(d, {0: 1}),
        "b": _unit(d, {1: 1}),
        "c": _unit(d, {2: 1}),
        "d": _rotated(d, 3, 40, 0.96),  # with h: cosine 0.96 (d and h in different blocks)
        "e": _rotated(d, 1, 41, 0.99),  # with b: 0.99, same block
        "f": _unit(d, {5: 1}),
        "g": _rotated(d, 2, 42, 0.93),  # with c: 0.93 < 0.95: not a duplicate
        "h": _unit(d, {3: 1}),
        "i": _unit(d, {0: math.cos(theta), 43: math.sin(theta)}),  # with a: 0.97
        "j": _unit(d, {0: math.cos(2 * theta), 43: math.sin(2 * theta)}),  # with i: 0.97, with a: 0.8818
        "k": _unit(d, {7: 1}),
        "m": _unit(d, {5: 1}),  # same as f: 1.0
        "l": _rotated(d, 7, 44, 0.951),  # with k: 0.951
    }
    # with blocks of 4 (0-3, 4-7, 8-11, 12), a-i, b-e, d-h, f-m and k-l are pairs across blocks
    ids = list(vectors)
    return ids, np.stack([vectors[i] for i in ids]).astype(np.float32)


@pytest.mark.parametrize("block_size", [1, 4, 5, 4096])
def test_semantic_groups_from_known_cosines_across_blocks(block_size):
    ids, emb = _semantic_case()
    assert emb.shape[0] > 4
    groups = semantic_duplicate_groups(ids, emb, DuplicateConfig(), block_size=block_size)
    summary = [(g.representative, [(m, match, round(s, 3)) for m, match, s in g.members]) for g in groups]
    assert summary == [
        ("a", [("i", "a", 0.97), ("j", "i", 0.97)]),  # j is 0.88 from a: it names i, its neighbour
        ("b", [("e", "b", 0.99)]),
        ("d", [("h", "d", 0.96)]),
        ("f", [("m", "f", 1.0)]),
        ("k", [("l", "k", 0.951)]),
    ]


def test_semantic_results_name_the_other_sample_with_the_cosine():
    ids, emb = _semantic_case()
    groups = semantic_duplicate_groups(ids, emb, DuplicateConfig(), block_size=4)
    results = group_results(groups, "semantic", ids=ids)
    assert results["i"].flags[0].rule == "semantic_duplicate"
    assert results["i"].flags[0].reason == "semantically the same as sample a, cosine 0.97"
    assert results["j"].flags[0].reason == "semantically the same as sample i, cosine 0.97"
    assert results["l"].flags[0].reason == "semantically the same as sample k, cosine 0.95"
    assert results["a"].value == 3 and not results["a"].flagged and results["a"].details["duplicates"] == ["i", "j"]
    assert results["g"].value == 1 and not results["g"].flagged
    assert results["i"].details["cosine"] == pytest.approx(0.97, abs=1e-4)


def test_semantic_threshold_and_shape_checks():
    ids, emb = _semantic_case()
    strict = semantic_duplicate_groups(ids, emb, DuplicateConfig(semantic_threshold=0.98), block_size=4)
    assert [(g.representative, g.ids) for g in strict] == [("b", ["b", "e"]), ("f", ["f", "m"])]
    loose = semantic_duplicate_groups(ids, emb, DuplicateConfig(semantic_threshold=0.9), block_size=4)
    assert ["c", "g"] in [g.ids for g in loose]
    assert semantic_duplicate_groups([], np.zeros((0, 8), dtype=np.float32)) == []
    with pytest.raises(ValueError, match="shape"):
        semantic_duplicate_groups(ids[:-1], emb)


def test_semantic_groups_are_deterministic_on_random_data():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 32))
    noisy = base[rng.integers(0, 40, size=60)] + rng.normal(scale=0.08, size=(60, 32))
    emb = np.concatenate([base, noisy])
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    ids = list(range(len(emb)))
    config = DuplicateConfig(semantic_threshold=0.99)
    first = semantic_duplicate_groups(ids, emb, config, block_size=16)
    assert first == semantic_duplicate_groups(ids, emb, config, block_size=16)
    assert [g.ids for g in first] == [g.ids for g in semantic_duplicate_groups(ids, emb, config, block_size=1000)]
    # brute force: the groups are the connected components of the pairs above the threshold
    sims = emb @ emb.T
    for g in first:
        for member, matched, score in g.members:
            assert sims[ids.index(member), ids.index(matched)] >= 0.99 and score == pytest.approx(float(sims[member, matched]), abs=1e-4)
    grouped = {i for g in first for i in g.ids}
    pairs = {(i, j) for i in ids for j in ids if i < j and sims[i, j] >= 0.99}
    assert {i for pair in pairs for i in pair} == grouped


# --------------------------------------------------------------------------------------------------
# Combined results


def test_duplicate_results_collects_every_kind_per_sample():
    exact = [["s1", "s2"]]
    near = [DuplicateGroup("s1", [("s3", "s1", 0.9312)])]
    semantic = [DuplicateGroup("s4", [("s3", "s4", 0.9712)])]
    out = duplicate_results(exact=exact, near=near, semantic=semantic)
    assert sorted(out) == ["s1", "s2", "s3", "s4"]
    assert [r.name for r in out["s1"]] == ["exact_duplicate", "near_duplicate"]
    assert [r.flagged for r in out["s1"]] == [False, False]
    assert [f.reason for r in out["s3"] for f in r.flags] == [
        "near-duplicate of sample s1, Jaccard 0.93",
        "semantically the same as sample s4, cosine 0.97",
    ]
    assert out["s2"][0].flags[0].reason == "exact duplicate of sample s1"
    with pytest.raises(ValueError):
        group_results([], "fuzzy")
