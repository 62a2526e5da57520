"""End-to-end protocols on MovieLens-100K with the bundled text encoder (one seed each, to stay fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmrec.errors import InvalidInputError
from mmrec.evaluate.protocols import run_evaluation


def test_ms_recommenders_beats_popularity_in_a_sane_range(movielens, movielens_content) -> None:
    report = run_evaluation("movielens-100k", "ms-recommenders", seeds=(42,), split_by="item")
    assert report["dataset"] == "movielens-100k" and report["k"] == 10 and report["seeds"] == [42]
    ndcg = report["metrics"]["ndcg@10"]
    base = report["baselines"]
    assert ndcg > base["popularity"]["ndcg@10"] + 0.15
    assert ndcg > base["random"]["ndcg@10"] * 10
    assert 0.40 < ndcg < 0.60
    assert 0.30 < report["metrics"]["precision@10"] < 0.55
    # Recommenders' map (÷ n_rel) is always ≤ map@k (÷ min(n_rel, k))
    assert report["metrics"]["map"] <= report["metrics"]["map@10"]
    assert report["per_seed"][0]["n_users"] > 900
    json.dumps(report)  # the CLI prints it as JSON


def test_cold_items_beats_random_by_a_wide_margin(movielens, movielens_content) -> None:
    report = run_evaluation("movielens-100k", "cold-items", seeds=(42,))
    seed = report["per_seed"][0]
    assert seed["n_candidates"] == round(0.2 * 1682)
    recall = report["metrics"]["recall@10"]
    assert recall >= 2 * report["baselines"]["random"]["recall@10"]
    assert recall > report["baselines"]["popularity"]["recall@10"]  # popularity is blind to unseen items
    assert np.isfinite(report["metrics"]["novelty"])


def test_bad_protocol_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="not one of"):
        run_evaluation("movielens-100k", "leave-one-in")
    with pytest.raises(InvalidInputError, match="split_by"):
        run_evaluation("movielens-100k", "cold-items", split_by="user")
