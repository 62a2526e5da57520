"""Metric functions on cases small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrec.evaluate import metrics as M

# user 0: hits at ranks 1 and 3 of 4; 3 relevant items.  user 1: no hit, 2 relevant.  user 2: no relevant → skipped.
RANKED = [[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]]
RELEVANT = [{1, 3, 9}, {10, 11}, set()]


def test_precision_and_recall_average_over_users_with_relevant_items() -> None:
    assert M.precision_at_k(RANKED, RELEVANT, 4) == pytest.approx((2 / 4 + 0) / 2)
    assert M.recall_at_k(RANKED, RELEVANT, 4) == pytest.approx((2 / 3 + 0) / 2)
    assert M.precision_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / 2) / 2)
    assert M.hit_rate(RANKED, RELEVANT, 4) == pytest.approx(0.5)
    assert M.hit_rate(RANKED, RELEVANT, 1) == pytest.approx(0.5)


def test_ndcg_uses_min_of_relevant_and_k_for_the_ideal_list() -> None:
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # 3 relevant, k=4 → 3 ideal hits
    assert M.ndcg_at_k(RANKED, RELEVANT, 4) == pytest.approx((dcg / idcg) / 2)
    # k=2: only rank 1 hits; ideal has 2 hits
    assert M.ndcg_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / (1 + 1 / math.log2(3))) / 2)
    assert M.ndcg_at_k([[3, 1]], [{1, 3}], 2) == pytest.approx(1.0)


def test_map_denominators_follow_recommenders_map_and_map_at_k() -> None:
    ap_sum = 1 / 1 + 2 / 3  # hits at ranks 1 and 3
    assert M.map_at_k(RANKED, RELEVANT, 4, denominator="n_rel") == pytest.approx((ap_sum / 3) / 2)
    assert M.map_at_k(RANKED, RELEVANT, 2, denominator="min_k") == pytest.approx((1 / 2) / 2)
    assert M.map_at_k(RANKED, RELEVANT, 2, denominator="n_rel") == pytest.approx((1 / 3) / 2)
    with pytest.raises(ValueError, match="denominator"):
        M.map_at_k(RANKED, RELEVANT, 2, denominator="k")


def test_coverage_diversity_novelty() -> None:
    assert M.coverage([[0, 1], [1, 2]], n_items=6) == pytest.approx(0.5)
    vecs = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    # list [0, 1]: orthogonal → diversity 1; list [0, 2]: cos 1/√2 → 1 − 0.7071
    assert M.intra_list_diversity([[0, 1], [0, 2]], vecs) == pytest.approx((1.0 + 1 - 1 / math.sqrt(2)) / 2)
    pop = np.array([0.5, 0.25, 0.0])
    assert M.novelty([[0, 1]], pop) == pytest.approx((1 + 2) / 2)
    assert M.novelty([[2]], pop) == pytest.approx(-math.log2(1e-6))  # unseen item: clipped, finite


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="users"):
        M.recall_at_k([[1]], [{1}, {2}], 1)
    with pytest.raises(ValueError, match="k must be"):
        M.ndcg_at_k([[1]], [{1}], 0)


def test_hubness_by_hand() -> None:
    # k=2: item 0 in 1 list, item 1 in 2, item 2 in all 4, item 3 in 1 -> mean 2, deviations -1, 0, 2, -1
    # third moment (−1 + 0 + 8 − 1)/4 = 1.5, variance 6/4 = 1.5, skewness 1.5 / 1.5**1.5 = 1/sqrt(1.5)
    lists = np.array([[1, 2], [2, 3], [2, 1], [2, 0]])
    h = M.hubness(lists, n_items=4, k=2)
    assert (h.k, h.lists, h.max_occurrence, h.max_share) == (2, 4, 4, 1.0)
    assert h.skewness == pytest.approx(1 / math.sqrt(1.5))
    assert h.top_items[:2] == ((2, 4), (1, 2))
    # k=1 reads only the first column: counts 0, 1, 3, 0
    h1 = M.hubness(lists, n_items=4, k=1)
    assert (h1.max_occurrence, h1.max_share) == (3, 0.75)
    assert h1.skewness == pytest.approx(1 / math.sqrt(1.5))
    assert h1.to_dict()["top_items"] == [[2, 3], [1, 1]]


def test_hubness_ignores_padding_and_repeats_and_matches_scipy() -> None:
    from scipy.stats import skew

    padded = np.array([[1, -1, -1], [0, 0, 2]])
    assert list(M.k_occurrence(padded, 3, k=3)) == [1, 1, 1]
    assert M.hubness(padded, 3, k=3).skewness == 0.0  # a flat spread
    rng = np.random.default_rng(0)
    lists = np.stack(
        [rng.choice(50, size=10, replace=False, p=np.linspace(1, 5, 50) / 150) for _ in range(200)]
    )
    h = M.hubness(lists, 50, k=10)
    assert h.skewness == pytest.approx(float(skew(M.k_occurrence(lists, 50, 10), bias=True)))
    with pytest.raises(ValueError, match="n_items is 3"):
        M.hubness(np.array([[0, 3]]), 3)
    with pytest.raises(ValueError, match="2-d"):
        M.hubness(np.array([0, 1]), 3)
