"""Ranking and beyond-accuracy metrics as plain functions over top-k lists.

Conventions (those of Microsoft Recommenders' ``python_evaluation.py`` with binary relevance):
``ranked[u]`` is user u's recommended item ids, best first; ``relevant[u]`` the ids held out for u.
Users with no relevant items are skipped (Recommenders averages over users present in both tables);
users with relevant items but no hit count as 0. Every function returns the mean over those users.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Ranked = Sequence[Sequence[int]]
Relevant = Sequence[Collection[int]]


def _pairs(ranked: Ranked, relevant: Relevant, k: int) -> list[tuple[list[int], set[int]]]:
    if len(ranked) != len(relevant):
        raise ValueError(f"ranked has {len(ranked)} users but relevant has {len(relevant)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [(list(r)[:k], set(rel)) for r, rel in zip(ranked, relevant, strict=True) if len(rel) > 0]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def precision_at_k(ranked: Ranked, relevant: Relevant, k: int) -> float:
    """Hits in the top k divided by k (not by the list length: short lists are penalised)."""
    return _mean([sum(i in rel for i in top) / k for top, rel in _pairs(ranked, relevant, k)])


def recall_at_k(ranked: Ranked, relevant: Relevant, k: int) -> float:
    """Hits in the top k divided by the number of relevant items (can stay < 1 when n_rel > k)."""
    return _mean([sum(i in rel for i in top) / len(rel) for top, rel in _pairs(ranked, relevant, k)])


def hit_rate(ranked: Ranked, relevant: Relevant, k: int) -> float:
    """Share of users with at least one relevant item in the top k (HR@k of leave-one-out studies)."""
    return _mean([float(any(i in rel for i in top)) for top, rel in _pairs(ranked, relevant, k)])


def ndcg_at_k(ranked: Ranked, relevant: Relevant, k: int) -> float:
    """Binary nDCG@k: DCG = Σ 1/log2(rank+1) over hits; ideal DCG puts min(n_rel, k) hits first.

    Recommenders uses ln instead of log2; the base cancels in the ratio, so the values are identical.
    """
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    out = []
    for top, rel in _pairs(ranked, relevant, k):
        dcg = sum(disc[r] for r, i in enumerate(top) if i in rel)
        out.append(dcg / disc[: min(len(rel), k)].sum())
    return _mean(out)


def map_at_k(ranked: Ranked, relevant: Relevant, k: int, denominator: str = "min_k") -> float:
    """Mean average precision over the top k: Σ_{hits} (hits so far / rank) / D per user.

    ``denominator="min_k"``: D = min(n_rel, k), Recommenders' current ``map_at_k`` (Spark's MAP@k).
    ``denominator="n_rel"``: D = n_rel, Recommenders' ``map`` — the definition behind the "MAP" column
    of their MovieLens benchmark table (it was called ``map_at_k`` when that table was made).
    """
    if denominator not in ("min_k", "n_rel"):
        raise ValueError(f"denominator must be 'min_k' or 'n_rel', got {denominator!r}")
    out = []
    for top, rel in _pairs(ranked, relevant, k):
        hits, total = 0, 0.0
        for r, i in enumerate(top, start=1):
            if i in rel:
                hits += 1
                total += hits / r
        out.append(total / (min(len(rel), k) if denominator == "min_k" else len(rel)))
    return _mean(out)


def coverage(ranked: Ranked, n_items: int) -> float:
    """Catalogue coverage: distinct items recommended to anyone / catalogue size."""
    if n_items < 1:
        raise ValueError("n_items must be >= 1")
    return len({i for top in ranked for i in top}) / n_items


def intra_list_diversity(ranked: Ranked, item_vectors: np.ndarray) -> float:
    """1 − mean pairwise cosine of the item vectors inside each list, averaged over lists of ≥ 2 items."""
    vecs = np.asarray(item_vectors, dtype=np.float64)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    out = []
    for top in ranked:
        idx = list(top)
        n = len(idx)
        if n < 2:
            continue
        v = vecs[idx]
        sims = v @ v.T
        out.append(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))
    return _mean(out)


def novelty(ranked: Ranked, item_popularity: np.ndarray) -> float:
    """Mean −log2 p(i) of recommended items, p(i) = share of training users who interacted with i.

    ``item_popularity`` must be those shares; zeros (items nobody saw) are clipped to 1/(10⁶) so a
    cold item counts as very novel instead of infinite.
    """
    p = np.clip(np.asarray(item_popularity, dtype=np.float64), 1e-6, 1.0)
    vals = [float(-np.log2(p[list(top)]).mean()) for top in ranked if len(top) > 0]
    return _mean(vals)


@dataclass(frozen=True)
class Hubness:
    """How unevenly items appear in others' top-k lists (Radovanović et al., JMLR 2010).

    In high-dimensional spaces a few "hub" items sit in almost every neighbour list; a fused
    space that is not centred shows it as one item in a large share of all top-10 lists.
    ``max_occurrence``: lists the most frequent item appears in; ``max_share``: that over the number
    of lists; ``skewness``: of the k-occurrence counts over all ``n_items`` (0 for a flat spread;
    values above 1 are usually read as strong hubness); ``top_items``: (item index, count), most first.
    """

    k: int
    lists: int
    max_occurrence: int
    max_share: float
    skewness: float
    top_items: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "top_items": [list(t) for t in self.top_items]}


def k_occurrence(neighbours: np.ndarray, n_items: int, k: int = 10) -> np.ndarray:
    """How many lists each item index appears in, counting each list's first ``k`` entries.

    ``neighbours`` is (lists, width) of item indices, best first; negative entries are padding
    (FAISS returns -1 where a list is short) and are ignored, as are repeats inside one list.
    """
    nb = np.asarray(neighbours)
    if nb.ndim != 2:
        raise ValueError(f"neighbours must be a 2-d array (lists x width), got shape {nb.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    top = nb[:, :k].astype(np.int64)
    if top.size and int(top.max()) >= n_items:
        raise ValueError(f"neighbours holds item index {int(top.max())} but n_items is {n_items}")
    counts = np.zeros(n_items, dtype=np.int64)
    for row in top:
        ids = np.unique(row[row >= 0])
        counts[ids] += 1
    return counts


def hubness(neighbours: np.ndarray, n_items: int, k: int = 10, top: int = 5) -> Hubness:
    """Hubness of top-k neighbour lists over a catalogue of ``n_items`` (see :class:`Hubness`)."""
    counts = k_occurrence(neighbours, n_items, k)
    lists = int(np.asarray(neighbours).shape[0])
    c = counts.astype(np.float64)
    std = float(c.std())
    skew = float(np.mean((c - c.mean()) ** 3) / std**3) if std > 0 else 0.0
    order = np.argsort(-counts, kind="stable")[:top]
    best = int(counts.max())
    return Hubness(
        k=k,
        lists=lists,
        max_occurrence=best,
        max_share=best / lists if lists else 0.0,
        skewness=skew,
        top_items=tuple((int(i), int(counts[i])) for i in order if counts[i] > 0),
    )
