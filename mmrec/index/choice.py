"""Choosing a FAISS index from the expected library size and a memory budget (printable, overridable).

Rule (documented so that ``describe()`` output can be explained):

* fewer than ``exact_threshold`` vectors (default 50,000): ``Flat`` -- exact inner product, brute force
  is fast enough and recall is 1.0;
* otherwise, when raw float32 vectors plus an HNSW graph (M=32: about 2*32 int32 links per vector at
  level 0, x1.1 for upper levels) fit in ``memory_budget_bytes`` (default 8 GiB): ``HNSW32,Flat`` --
  no training, high recall at sub-millisecond latency, supports adding vectors at any time;
* beyond the budget: ``IVF{k},PQ{m}`` with ``k`` ~ 4*sqrt(n) rounded to a power of two (at most 65,536)
  and ``m`` bytes per vector (the largest divisor of the dimension <= min(64, dim/4)), trained on a sample.
"""

from __future__ import annotations

import math

DEFAULT_EXACT_THRESHOLD = 50_000
DEFAULT_MEMORY_BUDGET = 8 * 1024**3
HNSW_M = 32


def hnsw_bytes(n: int, dim: int, m: int = HNSW_M) -> int:
    """Approximate RAM for ``HNSW{m},Flat``: raw vectors + level-0 links + upper levels."""
    return int(n * (dim * 4 + 2 * m * 4 * 1.1))


def ivf_lists(n: int) -> int:
    """Number of IVF lists: about 4*sqrt(n), a power of two between 256 and 65,536."""
    k = 2 ** round(math.log2(max(4 * math.sqrt(max(n, 1)), 1)))
    return int(min(max(k, 256), 65_536))


def pq_bytes(dim: int) -> int:
    """PQ code size: the largest divisor of ``dim`` not above min(64, dim // 4)."""
    cap = max(1, min(64, dim // 4))
    return max(m for m in range(1, cap + 1) if dim % m == 0)


def choose_factory(
    dim: int,
    expected_size: int,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
) -> str:
    """The FAISS factory string for a library of ``expected_size`` vectors of ``dim`` (see module doc)."""
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    if expected_size < exact_threshold:
        return "Flat"
    if hnsw_bytes(expected_size, dim) <= memory_budget_bytes:
        return f"HNSW{HNSW_M},Flat"
    return f"IVF{ivf_lists(expected_size)},PQ{pq_bytes(dim)}"
