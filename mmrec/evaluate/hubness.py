"""Hubness of a library's fused vectors, on a bounded sample so that ``mmrec info`` stays fast.

The statistics are ``mmrec.evaluate.metrics.hubness``'s; this module picks the vectors and
their neighbour lists. In high-dimensional anisotropic spaces a few items ("hubs") turn up in almost everyone's nearest
neighbours and crowd out the right answers. Two numbers show it (Radovanović et al., 2010): how often
the most frequent item appears in the others' top-k lists (N_k max, also as a share of the lists),
and the skewness of the k-occurrence distribution N_k (0 for a symmetric one; hubs make it large).

``library_hubness`` computes them at read time over a seeded sample of at most ``sample`` fused rows,
exact top-k within the sample (a (sample x sample) product: 1000 rows of 3328 floats take a few
hundred ms); nothing is stored, so readers stay read-only. On a library larger than the sample it
measures the sample's own neighbourhoods, which is what the skewness needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from mmrec.evaluate.metrics import Hubness, hubness

HUBNESS_K = 10
HUBNESS_SAMPLE = 1000


class FusedRows(Protocol):
    """What hubness reads from a library store (``mmrec.store.LibraryStore``)."""

    def fused(self, keys: Sequence[int]) -> np.ndarray: ...


def neighbours(vectors: np.ndarray, k: int = HUBNESS_K) -> np.ndarray:
    """(n, min(k, n-1)) row indices of each row's nearest other rows by inner product, best first."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), dtype=np.int64)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def vector_hubness(vectors: np.ndarray, k: int = HUBNESS_K) -> Hubness:
    """Hubness of unit ``vectors`` among themselves (``mmrec.evaluate.metrics.hubness``)."""
    n = len(vectors)
    return hubness(neighbours(vectors, k), max(n, 1), k=max(1, min(k, n - 1)))


def sample_keys(keys: Sequence[int], sample: int = HUBNESS_SAMPLE, seed: int = 0) -> list[int]:
    """A seeded, sorted sample of at most ``sample`` keys (all of them when there are fewer)."""
    keys = sorted(int(k) for k in keys)
    if len(keys) <= sample:
        return keys
    rng = np.random.default_rng(seed)
    return sorted(int(keys[i]) for i in rng.choice(len(keys), size=sample, replace=False))


def library_hubness(
    store: FusedRows, keys: Sequence[int], k: int = HUBNESS_K, sample: int = HUBNESS_SAMPLE, seed: int = 0
) -> tuple[Hubness, int]:
    """Hubness of the fused rows of a seeded sample of ``keys``; returns it and the top item's key."""
    chosen = sample_keys(keys, sample, seed)
    result = vector_hubness(store.fused(chosen), k)
    top = result.top_items[0][0] if result.top_items else 0
    return result, (chosen[top] if chosen else -1)


__all__ = ["HUBNESS_K", "HUBNESS_SAMPLE", "library_hubness", "neighbours", "sample_keys", "vector_hubness"]
