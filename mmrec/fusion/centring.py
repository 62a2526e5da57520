"""The default fusion, centred on the library's own statistics: no training step, no encoder runs.

E5 and EfficientNet embeddings are anisotropic: every cosine of a block sits in a narrow band, so
items with more text-like blocks outrank image-only ones whatever they show (tuxpaint: no image-only
stamp in any caption's top 10 among all items), and every image looks like every other. Subtracting
each centred block's library mean before normalising (what ``train-fusion`` does first) spreads the
item cosines around 0; it needs nothing but the stored modality vectors. Which blocks, and why text
queries stay raw, is measured (see :data:`CENTRED_MODALITIES`).

A centred fusion is an ordinary checkpoint (``origin="centred"``, no bridges or fills) whose
``stats`` record what the centres were taken from, so it is published like a trained one: one
catalog transaction records its version with every re-fused row (``publish_fusion``), readers
load it read-only and centre media queries the same way (text queries: ``Fusion.raw_query_blocks``).

The rule (:func:`centring_due`), applied by a writer after an encode:

- a library with at least :data:`MIN_ITEMS` ok items and the plain default fusion is centred;
- a centred library is centred again (from its stored vectors) when its ok items have grown or
  shrunk by :data:`GROWTH` since the statistics were taken, or when the vectors of one modality
  have (a modality too rare to centre then counts from :data:`MIN_PER_MODALITY`) and the change is at
  least :data:`MODALITY_SHARE` of the items (a rare block doubling from 10 to 20 vectors does not
  re-fuse a million items);
- a trained fusion is never touched (its bridges were learnt on its own centres).

Re-centring every doubling costs at most one re-fuse per item on average (1 + 1/2 + 1/4 ...).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmrec.fusion.fusion import Fusion, trained_version
from mmrec.fusion.library_training import VectorSource, chunked, read_items
from mmrec.modalities import text_blocks

# Blocks centred by default, and the text-query blocks left uncentred: measured, not assumed
# (docs/architecture.md "mmrec.fusion" has the figures and commands). Centring the text-like blocks of
# items makes same-category neighbours much better (the demo's 30 stamps: top-1 0.80 -> 1.00), and all
# of them must be centred alike: one left raw keeps its ~0.8 offset and its items win every text query.
# Centring a *text query* with the items' mean is not centring it (E5 queries are not drawn from the
# passages' distribution): it let a two-block Chinese article about cats outrank the giraffe for the
# demo's elephant/giraffe self-description, so text queries meet the centred items uncentred.
# audio stays raw: on the tuxpaint sound set centring it lowered leave-one-out top-1 0.636 -> 0.595.
CENTRED_MODALITIES: tuple[str, ...] = ("frames", *text_blocks())
RAW_QUERY_BLOCKS: tuple[str, ...] = text_blocks()
MIN_ITEMS = 10
MIN_PER_MODALITY = 10
GROWTH = 2.0
MODALITY_SHARE = 0.1


@dataclass(frozen=True)
class CentringStats:
    """Per-modality means of a library's unit item vectors and how many vectors each came from."""

    centers: dict[str, np.ndarray]
    counts: dict[str, int]
    items: int
    taken: float

    def as_record(self) -> dict[str, float | dict[str, int]]:
        """What a checkpoint keeps (``Fusion.stats``): counts, not the centres (they are the weights)."""
        return {"items": self.items, "counts": dict(self.counts), "taken": self.taken}


def modality_means(
    store: VectorSource, keys: Sequence[int], dims: dict[str, int], chunk: int = 4096
) -> CentringStats:
    """Mean of each modality's unit item vectors (frames: the unit mean of the item's frames), read in
    key chunks (memory bounded by ``chunk``). Only :data:`CENTRED_MODALITIES` get a centre (every
    modality is counted), their own mean from at least :data:`MIN_PER_MODALITY` vectors (the mean of a
    few items is mostly those items: removing it erases them); text-like blocks with fewer take the mean
    of all text-like vectors, frames with fewer stay raw."""
    sums = {m: np.zeros(d, dtype=np.float64) for m, d in dims.items()}
    counts = dict.fromkeys(dims, 0)
    for part in chunked(keys, chunk):
        for item in read_items(store, part, list(dims)):
            for m, v in item.items():
                pooled = v.mean(axis=0)
                sums[m] += pooled / max(float(np.linalg.norm(pooled)), 1e-12)
                counts[m] += 1
    centers = {
        m: (sums[m] / counts[m]).astype(np.float32)
        for m in dims
        if m in CENTRED_MODALITIES and counts[m] >= MIN_PER_MODALITY
    }
    # A text-like block with too few vectors of its own (a few transcripts) takes the mean of all the
    # text-like vectors (one E5 space): left raw, its ~0.8 offset would win every text query.
    text_like = [m for m in RAW_QUERY_BLOCKS if m in dims and m in CENTRED_MODALITIES]
    pooled = sum(counts[m] for m in text_like)
    if pooled >= MIN_PER_MODALITY:
        mean = (sum(sums[m] for m in text_like) / pooled).astype(np.float32)
        centers.update({m: mean for m in text_like if m not in centers and counts[m]})
    return CentringStats(centers, {m: n for m, n in counts.items() if n}, len(keys), time.time())


def centred_fusion(stats: CentringStats, dims: dict[str, int], device: str = "auto") -> Fusion:
    """The default fusion with ``stats``' centres, versioned ``centred-<UTC time>-<hash>``."""
    fusion = Fusion(
        dims,
        device=device,
        centers=stats.centers,
        origin="centred",
        stats=stats.as_record(),
        raw_query_blocks=RAW_QUERY_BLOCKS,
    )
    fusion.version = "centred-" + trained_version(fusion)
    return fusion


def centring_due(fusion: Fusion, items: int, counts: dict[str, int]) -> str | None:
    """Why the library (``items`` ok items, ``counts`` vectors per modality) should be (re-)centred now,
    or None. ``fusion`` is the library's current one."""
    if fusion.origin == "trained":
        return None
    if fusion.origin == "default" or not fusion.stats:
        centrable = [
            m for m in CENTRED_MODALITIES if m in fusion.dims and counts.get(m, 0) >= MIN_PER_MODALITY
        ]
        return f"{items} items, default fusion" if items >= MIN_ITEMS and centrable else None
    if items < MIN_ITEMS:
        return None
    then = int(fusion.stats.get("items", 0) or 0)  # type: ignore[call-overload]
    if _moved(then, items):
        return f"items {then} -> {items}"
    old_counts = fusion.stats.get("counts") or {}
    assert isinstance(old_counts, dict)
    for m, n in sorted(counts.items()):
        if (
            m not in CENTRED_MODALITIES
            or m not in fusion.dims
            or abs(n - int(old_counts.get(m, 0))) < MODALITY_SHARE * items
        ):
            continue
        before = int(old_counts.get(m, 0)) if m in fusion.centers else 0
        if (m in fusion.centers or n >= MIN_PER_MODALITY) and _moved(max(before, MIN_PER_MODALITY - 1), n):
            return f"{m} vectors {int(old_counts.get(m, 0))} -> {n}"
    return None


def _moved(before: int, now: int) -> bool:
    return now >= GROWTH * max(before, 1) or now * GROWTH <= before


__all__ = [
    "CENTRED_MODALITIES",
    "GROWTH",
    "MIN_ITEMS",
    "MODALITY_SHARE",
    "RAW_QUERY_BLOCKS",
    "MIN_PER_MODALITY",
    "CentringStats",
    "centred_fusion",
    "centring_due",
    "modality_means",
]
