"""Selection: allocations against hand-computed answers, each in-stratum method, the split, and the same
result whatever order the candidates come in."""

from __future__ import annotations

import random
import time
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from exports.selection import (
    Candidate,
    Pool,
    allocate_targets,
    apply_short,
    build_selection,
    cluster_round_robin,
    k_center,
    largest_remainder,
    select_for_spec,
    threshold_pick,
    water_fill,
)
from exports.spec import Balance, Select, Split, spec_parse


def spec(**parts):
    return spec_parse({"name": "t", **parts})


def cands(strata_sizes, *, quality=None, cluster=None, rows=False, start=1):
    """Candidates with ids start.. in stratum order; quality/cluster as functions of the id."""
    out, i = [], start
    for key, n in strata_sizes.items():
        for _ in range(n):
            out.append(Candidate(i, key, None if quality is None else quality(i), None if cluster is None else cluster(i), i - start if rows else None))
            i += 1
    return out


def shuffled(items, seed):
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def same(a, b):
    return (a.train_ids.tolist(), a.validation_ids.tolist(), a.strata, a.dropped, a.shrink) == (
        b.train_ids.tolist(), b.validation_ids.tolist(), b.strata, b.dropped, b.shrink)


# --- allocation by hand ----------------------------------------------------------------------------


def test_largest_remainder_gives_leftover_units_to_the_largest_remainders_then_by_key():
    assert largest_remainder({"a": Fraction(7, 2), "b": Fraction(21, 10), "c": Fraction(7, 5)}, 7) == {"a": 4, "b": 2, "c": 1}
    assert largest_remainder({"x": Fraction(10, 3), "y": Fraction(10, 3), "z": Fraction(10, 3)}, 10) == {"x": 4, "y": 3, "z": 3}


def test_ratios_are_scaled_to_the_size_and_sum_to_it_exactly():
    # given weights 0.5 / 0.3 / 0.2 and a size of 7: quotas 3.5, 2.1, 1.4
    balance = Balance(by=("task_type",), mode="ratios", ratios=(("a", 0.5), ("b", 0.3), ("c", 0.2)))
    # when targets are allocated
    targets = allocate_targets({"a": 100, "b": 100, "c": 100, "d": 50}, balance, 7)
    # then floors 3, 2, 1 and the one left over goes to a (remainder 0.5); d was not asked for
    assert targets == {"a": 4, "b": 2, "c": 1, "d": 0}


def test_counts_are_taken_as_given_and_unnamed_strata_get_none():
    balance = Balance(by=("task_type",), mode="counts", counts=(("a", 4), ("b", 6)))
    assert allocate_targets({"a": 10, "b": 3, "c": 5}, balance, None) == {"a": 4, "b": 6, "c": 0}


def test_none_with_a_size_shares_it_in_proportion_to_the_pools():
    # pools 6 / 3 / 1 and size 5: quotas 3, 1.5, 0.5; the tie at 0.5 goes to b (key order)
    assert allocate_targets({"a": 6, "b": 3, "c": 1}, Balance(), 5) == {"a": 3, "b": 2, "c": 0}
    assert allocate_targets({"a": 6, "b": 3, "c": 1}, Balance(), None) == {"a": 6, "b": 3, "c": 1}


def test_cap_limits_each_stratum_and_a_size_is_shared_evenly_under_the_cap():
    balance = Balance(by=("task_type",), mode="cap", cap=30)
    pools = {"a": 100, "b": 5, "c": 40}
    assert allocate_targets(pools, balance, None) == {"a": 30, "b": 5, "c": 30}
    # b gives its 5, the other 45 split 22/22 and the odd one to a (key order)
    assert allocate_targets(pools, balance, 50) == {"a": 23, "b": 5, "c": 22}
    assert water_fill({"a": 3, "b": 3}, 10) == {"a": 3, "b": 3}


def test_take_all_takes_what_a_short_stratum_has():
    effective, shrink = apply_short({"a": 50, "b": 4}, {"a": 20, "b": 10}, "take_all")
    assert (effective, shrink) == ({"a": 20, "b": 4}, None)


def test_shrink_scales_every_stratum_by_the_shortest_ones_factor():
    # b has 4 of 10 asked: every target is scaled by 0.4, so a gives 8 and the 2:1 mixture holds
    effective, shrink = apply_short({"a": 50, "b": 4}, {"a": 20, "b": 10}, "shrink")
    assert effective == {"a": 8, "b": 4}
    assert shrink == {"factor": 0.4, "limited_by": "b", "pool": 4, "target": 10}


def test_shrink_does_nothing_when_no_stratum_is_short():
    assert apply_short({"a": 50, "b": 40}, {"a": 20, "b": 10}, "shrink") == ({"a": 20, "b": 10}, None)


# --- whole selections ----------------------------------------------------------------------------------


def test_counts_end_to_end_report_short_strata_and_why_the_rest_was_left_out():
    # given 10 qa, 3 code and 5 chat candidates; counts ask 4 qa, 6 code and 2 of "math" that has none
    pool = cands({"qa": 10, "code": 3, "chat": 5})
    s = spec(balance={"by": ["task_type"], "mode": "counts", "counts": {"qa": 4, "code": 6, "math": 2}})
    # when selected
    sel = select_for_spec(pool, s)
    # then each stratum reports pool, target, chosen and short; the dropped reasons add up
    assert {k: (v["pool"], v["target"], v["chosen"], v["short"]) for k, v in sel.strata.items()} == {
        "chat": (5, 0, 0, False), "code": (3, 6, 3, True), "math": (0, 2, 0, True), "qa": (10, 4, 4, False)}
    assert sel.dropped == {"not_requested": 5, "over_target": 6}
    assert len(sel) == 7 and sel.validation_ids.tolist() == []
    assert sum(sel.dropped.values()) == 18 - len(sel)
    assert set(sel.train_ids.tolist()) >= {11, 12, 13}
    assert sel.train_ids.tolist() == sorted(sel.train_ids.tolist())


def test_shrink_end_to_end_keeps_the_mixture_and_names_the_limiting_stratum():
    pool = cands({"qa/hard": 50, "code/-": 4})
    s = spec(size=30, balance={"by": ["task_type", "difficulty"], "mode": "ratios", "ratios": {"qa/hard": 2, "code/-": 1}, "short": "shrink"})
    sel = select_for_spec(pool, s)
    assert {k: (v["target"], v["chosen"], v["short"]) for k, v in sel.strata.items()} == {"code/-": (10, 4, True), "qa/hard": (20, 8, False)}
    assert sel.shrink == {"factor": 0.4, "limited_by": "code/-", "pool": 4, "target": 10}
    assert sel.dropped == {"shrunk": 12, "over_target": 30}


def test_shrink_records_the_limiting_stratum_and_the_share_of_the_targets_kept():
    # given qa/hard with 3 candidates of 200 asked, qa/easy 100 of 100 and code/- 100 of 50
    pool = cands({"qa/hard": 3, "qa/easy": 100, "code/-": 100})
    s = spec(balance={"by": ["task_type", "difficulty"], "mode": "counts", "short": "shrink",
                      "counts": {"qa/hard": 200, "qa/easy": 100, "code/-": 50}})
    # when selected
    sel = select_for_spec(pool, s)
    # then the factor is min(3/200, 100/100, 100/50) = 3/200, set by qa/hard
    assert sel.shrink == {"factor": 0.015, "limited_by": "qa/hard", "pool": 3, "target": 200}
    # quotas 3, 1.5 and 0.75 sum to 5.25: 5 samples, floors 3, 1, 0 and the one left to code/- (remainder .75 > .5)
    assert {k: (v["pool"], v["target"], v["chosen"], v["short"]) for k, v in sel.strata.items()} == {
        "qa/hard": (3, 200, 3, True), "qa/easy": (100, 100, 1, False), "code/-": (100, 50, 1, False)}
    assert sel.dropped == {"shrunk": 99 + 49, "over_target": 50}
    assert sel.report()["shrink"] == sel.shrink


def test_a_tiny_shrink_factor_keeps_its_significant_digits_instead_of_reading_zero():
    effective, shrink = apply_short({"a": 1, "b": 10**8}, {"a": 10**7, "b": 10**8}, "shrink")
    assert shrink == {"factor": 1e-07, "limited_by": "a", "pool": 1, "target": 10**7}
    assert effective == {"a": 1, "b": 10}
    _e, third = apply_short({"a": 1, "b": 9}, {"a": 3, "b": 9}, "shrink")
    assert third["factor"] == 0.333333


def test_a_requested_stratum_without_candidates_shrinks_every_stratum_to_nothing():
    # the selection itself: factor 0, set by the empty stratum, nothing chosen (the services refuse this spec)
    pool = cands({"qa": 10, "code": 5})
    s = spec(balance={"by": ["task_type"], "mode": "counts", "counts": {"qa": 4, "code": 2, "math": 3}, "short": "shrink"})
    sel = select_for_spec(pool, s)
    assert sel.shrink == {"factor": 0.0, "limited_by": "math", "pool": 0, "target": 3}
    assert len(sel) == 0
    assert {k: (v["pool"], v["target"], v["chosen"]) for k, v in sel.strata.items()} == {"code": (5, 2, 0), "math": (0, 3, 0), "qa": (10, 4, 0)}


def test_everything_passes_when_nothing_limits_it():
    sel = select_for_spec(cands({"all": 9}), spec())
    assert sel.train_ids.tolist() == list(range(1, 10))
    assert sel.strata == {"all": {"pool": 9, "target": 9, "chosen": 9, "train": 9, "validation": 0, "short": False, "dropped": {}}}
    assert sel.dropped == {}


def test_an_empty_pool_gives_an_empty_selection():
    sel = select_for_spec([], spec(size=10))
    assert (len(sel), sel.strata, sel.dropped) == (0, {}, {})


@pytest.mark.parametrize(
    "select",
    [
        {"method": "random"},
        {"method": "quality", "quality_key": "ifd"},
        {"method": "cluster"},
        {"method": "diversity", "quality_key": "ifd", "diversity": {"method": "k_center"}},
        {"method": "diversity", "quality_key": "ifd", "diversity": {"method": "threshold", "threshold": 0.95}},
    ],
)
def test_the_same_input_in_any_order_gives_the_same_selection(select):
    # given candidates with qualities (some unknown), clusters and embeddings
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(120, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    base = cands({"qa/en": 50, "qa/de": 30, "code/en": 40}, quality=lambda i: None if i % 9 == 0 else round((i * 37 % 101) / 101, 3),
                 cluster=lambda i: i % 6, rows=True)
    s = spec(size=40, balance={"by": ["task_type", "language"], "mode": "none"}, select=select, split={"validation": 0.25, "seed": 3}, seed=11)
    # when selected from the original order and from shuffled orders
    first = select_for_spec(base, s, emb)
    # then the results are identical
    for seed in range(3):
        assert same(select_for_spec(shuffled(base, seed), s, emb), first)
    assert len(first) == 40 and first.validation_ids.shape[0] == 10


def test_renumbering_the_embedding_rows_does_not_change_the_selection():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(60, 4))
    base = cands({"a": 60}, quality=lambda i: (i * 13 % 17) / 17, rows=True)
    s = spec(size=12, select={"method": "diversity", "quality_key": "ifd"})
    perm = rng.permutation(60)
    moved = np.empty_like(emb)
    moved[perm] = emb
    renumbered = [Candidate(c.id, c.stratum, c.quality, c.cluster, int(perm[c.row])) for c in base]
    assert same(select_for_spec(renumbered, s, moved), select_for_spec(base, s, emb))


def test_the_seed_changes_a_random_draw_and_a_stratum_draw_does_not_depend_on_the_others():
    pool = cands({"a": 100, "b": 100})
    base = {"balance": {"by": ["task_type"], "mode": "counts", "counts": {"a": 10, "b": 10}}}
    one = select_for_spec(pool, spec(**base, seed=1))
    two = select_for_spec(pool, spec(**base, seed=2))
    assert one.train_ids.tolist() != two.train_ids.tolist()
    # asking for more of b leaves a's draw exactly as it was
    more_b = select_for_spec(pool, spec(balance={"by": ["task_type"], "mode": "counts", "counts": {"a": 10, "b": 30}}, seed=1))
    a_ids = [i for i in one.train_ids.tolist() if i <= 100]
    assert [i for i in more_b.train_ids.tolist() if i <= 100] == a_ids
    # and a bigger draw from b starts with the smaller one
    assert set(i for i in one.train_ids.tolist() if i > 100) <= set(more_b.train_ids.tolist())


def test_quality_takes_the_best_first_ties_by_id_and_unknown_last():
    # ids 1..6 with qualities 0.5, 0.9, None, 0.9, 0.1, None
    q = {1: 0.5, 2: 0.9, 3: None, 4: 0.9, 5: 0.1, 6: None}
    pool = [Candidate(i, "all", q[i]) for i in q]
    s = spec(select={"method": "quality", "quality_key": "ifd"})
    assert select_for_spec(pool, spec(size=3, select={"method": "quality", "quality_key": "ifd"})).train_ids.tolist() == [1, 2, 4]
    assert select_for_spec(pool, spec(size=5, select={"method": "quality", "quality_key": "ifd"})).train_ids.tolist() == [1, 2, 3, 4, 5]
    assert len(select_for_spec(pool, s)) == 6


def _k_center_reference(x, k, start):
    """Brute force: at every step, the unchosen point whose nearest chosen point is farthest; lowest index on ties."""
    chosen = [start]
    while len(chosen) < k:
        best, best_d = None, None
        for i in range(len(x)):
            if i in chosen:
                continue
            d = min(1 - float(np.dot(x[i], x[c])) for c in chosen)
            if best_d is None or d > best_d + 1e-12:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def test_k_center_matches_a_brute_force_reference():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for start in (0, 13):
        assert k_center(x, 9, start).tolist() == _k_center_reference(x, 9, start)


def test_k_center_spreads_over_the_space_instead_of_taking_near_copies():
    # given four tight groups of points on the unit circle, the best-quality point in the first group
    angles = [0.0, 0.01, 0.02, 1.57, 1.58, 3.14, 3.15, 4.71, 4.72, 4.73]
    emb = np.array([[np.cos(a), np.sin(a)] for a in angles])
    pool = [Candidate(i + 1, "all", 1.0 if i == 1 else 0.5, None, i) for i in range(10)]
    # when four are chosen by k-center
    sel = select_for_spec(pool, spec(size=4, select={"method": "diversity", "quality_key": "ifd"}), emb)
    # then one comes from each group, and the first group gives its best point (id 2)
    group = {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2, 7: 2, 8: 3, 9: 3, 10: 3}
    ids = sel.train_ids.tolist()
    assert sorted(group[i] for i in ids) == [0, 1, 2, 3]
    assert ids[0] == 2


def test_threshold_skips_candidates_too_similar_to_those_already_taken():
    # given best-first ids 1..5: 2 is a near copy of 1 (cos 0.99), 4 of 3 (cos 0.95), 5 stands apart
    e1, e3, e5 = np.eye(3)
    emb = np.array([e1, 0.99 * e1 + np.sqrt(1 - 0.99**2) * e3, e3, 0.95 * e3 + np.sqrt(1 - 0.95**2) * e5, e5])
    pool = [Candidate(i + 1, "all", 1 - i / 10, None, i) for i in range(5)]
    sel3 = {"method": "diversity", "quality_key": "ifd", "diversity": {"method": "threshold", "threshold": 0.9}}
    # when three are asked for, then 1, 3 and 5 are taken and 2 and 4 skipped
    three = select_for_spec(pool, spec(size=3, select=sel3), emb)
    assert three.train_ids.tolist() == [1, 3, 5]
    assert three.dropped == {"too_similar": 2}
    # when two are asked for, the walk stops at 3: only 2 was skipped on the way, 4 and 5 were never looked at
    two = select_for_spec(pool, spec(size=2, select=sel3), emb)
    assert two.train_ids.tolist() == [1, 3]
    assert two.dropped == {"too_similar": 1, "over_target": 2}
    # when all five are asked for, the stratum is short by the two skipped
    five = select_for_spec(pool, spec(select=sel3), emb)
    assert five.strata["all"]["short"] is True and five.strata["all"]["chosen"] == 3


def _threshold_reference(x, order, k, threshold):
    taken, skipped = [], 0
    for i in order:
        if len(taken) == k:
            break
        if taken and max(float(np.dot(x[i], x[t])) for t in taken) >= threshold:
            skipped += 1
            continue
        taken.append(int(i))
    return taken, skipped


def test_threshold_matches_a_plain_loop_across_many_blocks():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    order = rng.permutation(1500)
    for k in (5, 40, 1500):
        taken, skipped = threshold_pick(x, order, k, 0.97)
        assert (taken.tolist(), skipped) == _threshold_reference(x, order, k, 0.97)


def test_candidates_without_embeddings_are_left_out_of_diversity_selection():
    emb = np.eye(4)
    pool = [Candidate(1, "all", 0.9, None, 0), Candidate(2, "all", 0.8, None, None), Candidate(3, "all", 0.7, None, 1)]
    sel = select_for_spec(pool, spec(select={"method": "diversity", "quality_key": "ifd"}), emb)
    assert sel.train_ids.tolist() == [1, 3]
    assert sel.dropped == {"no_embedding": 1}
    with pytest.raises(ValueError, match="needs the embedding matrix"):
        select_for_spec(pool, spec(select={"method": "diversity"}))


def test_cluster_sampling_covers_every_cluster_before_any_gives_a_second():
    # given five clusters of sizes 10, 1, 3, 7 and 2
    sizes = {0: 10, 1: 1, 2: 3, 3: 7, 4: 2}
    clusters = np.array([c for c, n in sizes.items() for _ in range(n)])
    for seed in range(5):
        def draw(k, seed=seed):
            return Counter(clusters[cluster_round_robin(clusters, k, np.random.default_rng(seed))].tolist())
        # when 5 are drawn, then each cluster gives exactly one
        assert draw(5) == Counter({0: 1, 1: 1, 2: 1, 3: 1, 4: 1})
        # when 7 are drawn, then every cluster gives one and two of those with more give a second
        seven = draw(7)
        assert set(seven) == set(sizes) and sorted(seven.values()) == [1, 1, 1, 2, 2]
        # when 13: a round of 5, a round of 4 (clusters with 2+), a round of 3 (3+), one more from 10 or 7
        thirteen = draw(13)
        assert (thirteen[1], thirteen[4], thirteen[2]) == (1, 2, 3)
        assert sorted([thirteen[0], thirteen[3]]) == [3, 4]


def test_cluster_sampling_through_the_spec_covers_the_clusters_of_each_stratum():
    pool = cands({"qa": 40}, cluster=lambda i: 0 if i <= 30 else (i % 5) + 1)
    sel = select_for_spec(pool, spec(size=6, select={"method": "cluster"}))
    assert sorted(Counter(0 if i <= 30 else (i % 5) + 1 for i in sel.train_ids.tolist()).values()) == [1, 1, 1, 1, 1, 1]


# --- the split -----------------------------------------------------------------------------------------


def test_a_validation_fraction_is_stratified_by_largest_remainder():
    # 30 a and 20 b chosen, 20%: 10 for validation, 6 from a and 4 from b
    sel = select_for_spec(cands({"a": 30, "b": 20}), spec(split={"validation": 0.2, "seed": 1}))
    assert (sel.strata["a"]["validation"], sel.strata["b"]["validation"]) == (6, 4)
    assert (sel.strata["a"]["train"], sel.strata["b"]["train"]) == (24, 16)
    assert not set(sel.train_ids.tolist()) & set(sel.validation_ids.tolist())
    assert sorted(sel.ids.tolist()) == list(range(1, 51))
    assert sel.split_of(int(sel.validation_ids[0])) == "validation"
    assert sel.split_of(int(sel.train_ids[0])) == "train"
    assert sel.split_of(999) is None


def test_a_validation_count_is_shared_by_largest_remainder():
    # 7 of 50: quotas 4.2 and 2.8, floors 4 and 2, the last to b (0.8)
    sel = select_for_spec(cands({"a": 30, "b": 20}), spec(split={"validation": 7}))
    assert (sel.strata["a"]["validation"], sel.strata["b"]["validation"]) == (4, 3)
    assert len(sel.validation_ids) == 7


def test_the_split_seed_moves_which_samples_validate_but_not_how_many():
    pool = cands({"a": 30, "b": 20})
    one = select_for_spec(pool, spec(split={"validation": 0.2, "seed": 1}))
    two = select_for_spec(pool, spec(split={"validation": 0.2, "seed": 2}))
    assert one.validation_ids.tolist() != two.validation_ids.tolist()
    assert len(one.validation_ids) == len(two.validation_ids) == 10
    assert sorted(one.ids.tolist()) == sorted(two.ids.tolist())


def test_a_fraction_is_rounded_down_so_training_keeps_the_rest():
    sel = select_for_spec(cands({"a": 9}), spec(split={"validation": 0.5}))
    assert (len(sel.train_ids), len(sel.validation_ids)) == (5, 4)


# --- input checks and speed ---------------------------------------------------------------------------


def test_a_repeated_id_is_refused():
    with pytest.raises(ValueError, match="candidate id 3 appears more than once"):
        Pool.from_candidates([Candidate(3, "a"), Candidate(1, "a"), Candidate(3, "b")])


def test_a_pool_from_columns_equals_one_from_candidates():
    items = [Candidate(5, "b", 0.5, 2, 0), Candidate(2, "a", None, None, None)]
    a = Pool.from_candidates(items)
    b = Pool.from_arrays([5, 2], ["b", "a"], quality=[0.5, None], cluster=[2, np.iinfo(np.int64).min], row=[0, -1])
    assert a.ids.tolist() == b.ids.tolist() == [2, 5]
    assert a.keys == b.keys == ("a", "b")
    assert a.codes.tolist() == b.codes.tolist() == [0, 1]
    assert np.array_equal(a.quality, b.quality, equal_nan=True)
    assert a.row.tolist() == b.row.tolist() == [-1, 0]


def test_a_million_candidates_are_selected_in_well_under_a_few_seconds():
    # given a million candidates over 20 strata, as columns (what the build reads from the database)
    n = 1_000_000
    rng = np.random.default_rng(0)
    keys = np.array([f"t{i}/easy" for i in range(20)])
    pool = Pool.from_arrays(rng.permutation(n) + 1, keys[rng.integers(0, 20, n)], quality=rng.random(n))
    balance = Balance(by=("task_type", "difficulty"), mode="cap", cap=30_000)
    for select in (Select("random"), Select("quality", "ifd")):
        # when 500,000 are selected with a 5% validation split
        t = time.perf_counter()
        sel = build_selection(pool, balance=balance, select=select, size=500_000, split=Split(0.05, 1), seed=3)
        elapsed = time.perf_counter() - t
        # then it is quick and exact
        assert len(sel) == 500_000 and len(sel.validation_ids) == 25_000
        assert elapsed < 5, f"{select.method} took {elapsed:.2f} s"
