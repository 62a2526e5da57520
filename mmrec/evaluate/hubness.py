"""Hubness of a library's fused vectors, on a bounded sample so that ``mmrec info`` stays fast.

In high-dimensional anisotropic spaces a few items ("hubs") turn up in almost everyone's nearest
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
from dataclasses import dataclass
from typing import Protocol

import numpy as np

HUBNESS_K = 10
HUBNESS_SAMPLE = 1000


class FusedRows(Protocol):
    """What hubness reads from a library store (``mmrec.store.LibraryStore``)."""

    def fused(self, keys: Sequence[int]) -> np.ndarray: ...


@dataclass(frozen=True)
class Hubness:
    """k-occurrence statistics of one set of vectors."""

    k: int
    n: int
    max_occurrence: int  # how many of the n top-k lists hold the most frequent item
    max_share: float  # max_occurrence / n
    skewness: float  # of the k-occurrence distribution
    top: int  # row of the most frequent item


def k_occurrence(vectors: np.ndarray, k: int = HUBNESS_K) -> np.ndarray:
    """N_k: for each row, in how many other rows' top-k (by inner product, self excluded) it appears."""
    n = len(vectors)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    k = min(k, n - 1)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.bincount(top.ravel(), minlength=n)


def hubness(vectors: np.ndarray, k: int = HUBNESS_K) -> Hubness:
    """Hubness of unit ``vectors`` (rows); see the module docstring."""
    vectors = np.asarray(vectors, dtype=np.float32)
    counts = k_occurrence(vectors, k)
    n = len(counts)
    if n < 3 or float(counts.std()) == 0.0:
        skewness = 0.0
    else:
        centred = counts - counts.mean()
        skewness = float(np.mean(centred**3) / np.mean(centred**2) ** 1.5)
    top = int(np.argmax(counts)) if n else -1
    peak = int(counts[top]) if n else 0
    return Hubness(min(k, max(n - 1, 0)), n, peak, round(peak / n, 4) if n else 0.0, round(skewness, 3), top)


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
    result = hubness(store.fused(chosen), k)
    return result, (chosen[result.top] if chosen else -1)


__all__ = [
    "HUBNESS_K",
    "HUBNESS_SAMPLE",
    "Hubness",
    "hubness",
    "k_occurrence",
    "library_hubness",
    "sample_keys",
]
