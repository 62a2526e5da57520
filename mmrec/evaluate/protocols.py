"""Offline evaluation protocols, each named after what it reproduces, scoring mmrec against baselines.

- ``ms-recommenders``: Microsoft Recommenders' MovieLens benchmark — 75/25 stratified split
  (``split_by="item"`` as their benchmark notebook calls it, or ``"user"`` as their README describes),
  top-k with training items removed, every test interaction relevant (binary).
- ``leave-last-out``: each user's latest interaction is the test item; rank all unseen items (HR, nDCG).
- ``cold-items``: 20% of items never appear in training; for users who consumed them, rank only
  those hidden items (Recall, nDCG); only content can tell them apart.

Models in every run: ``mmrec`` (:class:`HybridScorer`) and the baselines ``random``, ``popularity``,
``collaborative`` (EASE, λ tuned with the hybrid) and ``content`` (history/item text similarity).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmrec.errors import InvalidInputError
from mmrec.evaluate import metrics as M
from mmrec.evaluate.content import EmbedTexts, embed_items
from mmrec.evaluate.datasets import Dataset, load_dataset
from mmrec.evaluate.splits import cold_items_split, leave_last_out, stratified_split
from mmrec.recommend.collaborative import EASE, InteractionData, Popularity
from mmrec.recommend.hybrid import ContentSimilarity, HybridScorer, top_k

PROTOCOLS = ("ms-recommenders", "leave-last-out", "cold-items")
BASELINES = ("random", "popularity", "collaborative", "content")


def run_evaluation(
    dataset: str | Path,
    protocol: str,
    k: int = 10,
    seeds: Sequence[int] = (42, 43, 44),
    split_by: str | None = None,
    embed_texts: EmbedTexts | None = None,
    model_key: str | None = None,
    max_users: int | None = None,
) -> dict[str, Any]:
    """Run ``protocol`` on ``dataset`` once per seed; return means and per-seed figures as a dict.

    ``split_by`` applies to ``ms-recommenders`` only (default ``"item"``, the benchmark notebook's).
    ``max_users`` evaluates a random subset of test users (for quick checks; training is untouched).
    """
    if protocol not in PROTOCOLS:
        raise InvalidInputError("protocol", "protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if protocol == "ms-recommenders":
        split_by = split_by or "item"
        if split_by not in ("user", "item"):
            raise InvalidInputError("split_by", "split_by", f"{split_by!r}: expected 'user' or 'item'")
    elif split_by is not None:
        raise InvalidInputError(
            "split_by", "split_by", f"only the ms-recommenders protocol takes it, not {protocol}"
        )
    if not seeds:
        raise InvalidInputError("seeds", "seeds", "at least one seed is needed")
    data = load_dataset(dataset)
    content = embed_items(data.item_documents(), embed_texts=embed_texts, model_key=model_key)
    per_seed = [_run_seed(data, content, protocol, k, int(s), split_by, max_users) for s in seeds]
    names = ["mmrec", *BASELINES]
    means = {n: _mean_metrics([p["models"][n] for p in per_seed]) for n in names}
    return {
        "dataset": data.name,
        "protocol": protocol,
        "split_by": split_by,
        "k": k,
        "metrics": means["mmrec"],
        "baselines": {n: means[n] for n in BASELINES},
        "seeds": [int(s) for s in seeds],
        "per_seed": per_seed,
    }


def _mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def _run_seed(
    data: Dataset,
    content: np.ndarray,
    protocol: str,
    k: int,
    seed: int,
    split_by: str | None,
    max_users: int | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    if protocol == "ms-recommenders":
        groups = data.items if split_by == "item" else data.users
        train_rows, test_rows = stratified_split(groups, ratio=0.75, seed=seed)
        candidates = None
    elif protocol == "leave-last-out":
        train_rows, test_rows = leave_last_out(data.users, data.timestamps)
        candidates = None
    else:
        train_rows, test_rows, cold = cold_items_split(data.items, fraction=0.2, seed=seed)
        candidates = np.isin(np.asarray(data.item_ids), cold)
    users = sorted(set(data.users.tolist()))
    train = InteractionData.from_frame(
        data.users[train_rows], data.items[train_rows], users=users, items=data.item_ids
    ).binary()
    test = InteractionData.from_frame(
        data.users[test_rows], data.items[test_rows], users=users, items=data.item_ids
    ).binary()
    eval_users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    if max_users is not None and len(eval_users) > max_users:
        eval_users = np.sort(np.random.default_rng(seed).choice(eval_users, max_users, replace=False))
    rows = train.matrix[eval_users]
    relevant = [set(test.matrix[u].indices.tolist()) for u in eval_users]
    exclude = (
        rows
        if candidates is None
        else (rows + sp.csr_matrix(np.tile(~candidates, (len(eval_users), 1)))).tocsr()
    )

    hybrid = HybridScorer(seed=seed).fit(train, content)
    rng = np.random.default_rng(seed)
    scorers = {
        "mmrec": lambda r: hybrid.score(r)["total"],
        "random": lambda r: rng.random((r.shape[0], train.n_items)).astype(np.float32),
        "popularity": Popularity().fit(train).score,
        "collaborative": EASE(hybrid.l2).fit(train).score,
        "content": ContentSimilarity().fit(train, content).score,
    }
    # add-one smoothing: an item nobody saw in training (all cold items) scores log2(n_users + 1), not ∞
    popularity = (np.asarray(train.matrix.sum(axis=0)).ravel() + 1.0) / (train.n_users + 1.0)
    n_candidates = int(candidates.sum()) if candidates is not None else train.n_items
    models = {}
    for name, scorer in scorers.items():
        ranked = top_k(scorer(rows), k, exclude=exclude).tolist()
        models[name] = _metrics(ranked, relevant, k, content, popularity, n_candidates)
    return {
        "seed": seed,
        "n_train": int(len(train_rows)),
        "n_test": int(len(test_rows)),
        "n_users": int(len(eval_users)),
        "n_candidates": n_candidates,
        "tuning": {**hybrid.tuning, "weights": dict(hybrid.weights)},
        "models": models,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _metrics(
    ranked: list[list[int]],
    relevant: list[set[int]],
    k: int,
    content: np.ndarray,
    popularity: np.ndarray,
    n_candidates: int,
) -> dict[str, float]:
    return {
        f"precision@{k}": M.precision_at_k(ranked, relevant, k),
        f"recall@{k}": M.recall_at_k(ranked, relevant, k),
        f"ndcg@{k}": M.ndcg_at_k(ranked, relevant, k),
        "map": M.map_at_k(ranked, relevant, k, denominator="n_rel"),
        f"map@{k}": M.map_at_k(ranked, relevant, k, denominator="min_k"),
        f"hit_rate@{k}": M.hit_rate(ranked, relevant, k),
        "coverage": M.coverage(ranked, n_candidates),
        "intra_list_diversity": M.intra_list_diversity(ranked, content),
        "novelty": M.novelty(ranked, popularity),
    }
