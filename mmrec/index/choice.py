"""Choosing a FAISS index from the expected library size, its width and the memory it may hold.

Rule (``choose_index`` returns the choice and the sentence that explains it; ``describe()`` and
``mmrec reindex`` print it):

* The memory budget is ``min(memory_budget_bytes, MEMORY_FRACTION x available RAM)``: the configured
  cap (default 8 GiB) and half of what the machine has free now (``MemAvailable``), so a server with
  4 GB free never picks an index that needs 6 GB resident.
* fewer than ``exact_threshold`` vectors (default 50,000) whose raw float32 vectors fit the budget:
  ``Flat`` -- exact inner product, brute force is fast enough and recall is 1.0;
* raw float32 vectors plus an HNSW graph (M=32: about 2*32 int32 links per vector at level 0, x1.1
  for upper levels) fit: ``HNSW32,Flat`` -- no training, high recall, adds at any time;
* otherwise ``ondisk:IVF{k},PQ{m}`` (:func:`ivfpq_factory`): PQ codes in memory-mapped shard files
  (``mmrec.index.ondisk``), built from the vectors on disk in chunks, every search re-ranked with
  the stored full-width vectors. Resident are the centroids, the PQ tables and the id maps; the
  page cache holds the lists, all of them when RAM allows. ``k`` is about 4*sqrt(n) as a power of
  two (256..65,536); from ``HNSW_COARSE_LISTS`` lists on, the lists' centroids sit in an HNSW graph
  (``IVF{k}_HNSW32``) because assigning 10M vectors to 16,384 centroids by brute force took about
  an hour on two cores. ``m`` (bytes per vector) gives each sub-quantiser at most
  ``PQ_DIMS_PER_BYTE`` dimensions: the old cap of 64 bytes left 52 dimensions per byte at 3,328 wide,
  and recall@10 after the re-rank was 0.27 on the 1M x 3,328 sizing run (``docs/scaling.md``).

An in-RAM ``IVF{k},PQ{m}`` is no longer chosen for a library: it was picked when its codes fit and
searched without the re-rank, the lowest recall of all. ``VectorIndex.create`` (no stored vectors to
re-rank with) still falls back to it when HNSW does not fit.

A factory string given by the user (``mmrec reindex --factory``) always wins; the prefix ``ondisk:``
asks for the on-disk layout explicitly (``ondisk:OPQ64_512,IVF4096,PQ64`` also reduces the width).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

DEFAULT_EXACT_THRESHOLD = 50_000
DEFAULT_MEMORY_BUDGET = 8 * 1024**3
MEMORY_FRACTION = 0.5
HNSW_M = 32
ONDISK_PREFIX = "ondisk:"
HNSW_COARSE_LISTS = 16_384
PQ_DIMS_PER_BYTE = 8


def available_memory() -> int:
    """Bytes the kernel reports as available (``MemAvailable``); a large number when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 50


def flat_bytes(n: int, dim: int) -> int:
    """RAM for ``Flat`` (raw float32 vectors) plus the id map."""
    return int(n * (dim * 4 + 16))


def hnsw_bytes(n: int, dim: int, m: int = HNSW_M) -> int:
    """Approximate RAM for ``HNSW{m},Flat``: raw vectors + level-0 links + upper levels."""
    return int(n * (dim * 4 + 2 * m * 4 * 1.1))


def ivf_lists(n: int) -> int:
    """Number of IVF lists: about 4*sqrt(n), a power of two between 256 and 65,536."""
    k = 2 ** round(math.log2(max(4 * math.sqrt(max(n, 1)), 1)))
    return int(min(max(k, 256), 65_536))


def pq_bytes(dim: int) -> int:
    """PQ code size: the smallest divisor of ``dim`` with at most ``PQ_DIMS_PER_BYTE`` dimensions per byte."""
    return min(m for m in range(1, dim + 1) if dim % m == 0 and dim // m <= PQ_DIMS_PER_BYTE)


def ivfpq_factory(n: int, dim: int) -> str:
    """The IVF-PQ factory for ``n`` vectors of width ``dim`` (module doc), without ``ondisk:``."""
    k = ivf_lists(n)
    coarse = f"IVF{k}_HNSW{HNSW_M}" if k >= HNSW_COARSE_LISTS else f"IVF{k}"
    return f"{coarse},PQ{pq_bytes(dim)}"


def ivfpq_bytes(n: int, dim: int) -> int:
    """RAM for an in-memory ``IVF{k},PQ{m}``: codes + ids + coarse centroids + PQ centroids."""
    return int(n * (pq_bytes(dim) + 8) + ivf_lists(n) * dim * 4 + 256 * dim * 4)


def ondisk_resident_bytes(n: int, dim: int) -> int:
    """RAM an on-disk ``IVF{k},PQ{m}`` keeps resident: centroids, PQ tables, id map of the shards."""
    return int(ivf_lists(n) * dim * 4 + 256 * dim * 4 + n * 8)


def _gib(x: float) -> str:
    return f"{x / 1024**3:.2f} GiB"


@dataclass(frozen=True)
class IndexChoice:
    """What the automatic choice picked (``factory``; ``ondisk:`` prefix for shard files) and why."""

    factory: str
    resident_bytes: int
    budget_bytes: int
    reason: str

    @property
    def on_disk(self) -> bool:
        return is_ondisk(self.factory)


def is_ondisk(factory: str | None) -> bool:
    """Whether a factory string asks for the memory-mapped shard layout."""
    return bool(factory) and str(factory).lower().startswith(ONDISK_PREFIX)


def strip_ondisk(factory: str) -> str:
    """The FAISS factory string inside an ``ondisk:`` one."""
    return factory[len(ONDISK_PREFIX) :] if is_ondisk(factory) else factory


def choose_index(
    dim: int,
    expected_size: int,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    available_bytes: int | None = None,
    allow_ondisk: bool = True,
) -> IndexChoice:
    """The index for ``expected_size`` vectors of width ``dim`` under the memory rule (module doc)."""
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    n = max(int(expected_size), 0)
    avail = available_memory() if available_bytes is None else int(available_bytes)
    budget = int(min(memory_budget_bytes, MEMORY_FRACTION * avail))
    where = f"budget {_gib(budget)} = min(cap {_gib(memory_budget_bytes)}, {MEMORY_FRACTION:g} x {_gib(avail)} available)"
    flat = flat_bytes(n, dim)
    if n < exact_threshold and flat <= budget:
        return IndexChoice(
            "Flat",
            flat,
            budget,
            f"{n} vectors < {exact_threshold}: exact search, {_gib(flat)} in RAM ({where})",
        )
    hnsw = hnsw_bytes(n, dim)
    if hnsw <= budget:
        return IndexChoice(
            f"HNSW{HNSW_M},Flat",
            hnsw,
            budget,
            f"{n} x {dim} vectors + graph = {_gib(hnsw)} fit in RAM ({where})",
        )
    factory = ivfpq_factory(n, dim)
    if not allow_ondisk:
        ivfpq = ivfpq_bytes(n, dim)
        return IndexChoice(
            factory,
            ivfpq,
            budget,
            f"HNSW would need {_gib(hnsw)} > {where}: PQ codes ({pq_bytes(dim)} B/vector) in RAM, "
            f"{_gib(ivfpq)}, no stored vectors to re-rank with",
        )
    resident = ondisk_resident_bytes(n, dim)
    codes = n * (pq_bytes(dim) + 8)
    return IndexChoice(
        ONDISK_PREFIX + factory,
        resident,
        budget,
        f"vectors + HNSW graph would need {_gib(hnsw)} > {where}: PQ codes ({pq_bytes(dim)} B/vector, "
        f"{_gib(codes)}) in memory-mapped shard files, re-ranked with the stored vectors; "
        f"{_gib(resident)} resident (centroids + id maps), list pages cached by the kernel",
    )


def choose_factory(
    dim: int,
    expected_size: int,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    available_bytes: int | None = None,
) -> str:
    """The factory string of :func:`choose_index` (``ondisk:`` prefixed when the codes go to disk)."""
    return choose_index(dim, expected_size, exact_threshold, memory_budget_bytes, available_bytes).factory
