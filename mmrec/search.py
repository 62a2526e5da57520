"""Query the fused index: filters, exclusions, and per-modality score contributions.

A fused vector is a block-wise concatenation (one block per modality), so the inner product
between a query and an item splits exactly into per-block dot products (``Fusion.contributions``).
Those parts are shown with every result: they say which modality made an item match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from mmrec import modalities
from mmrec.store import ItemRecord, LibraryStore

# The block order of fused vectors and the blocks a text query fills (``mmrec.modalities``).
FUSED_BLOCK_ORDER: tuple[str, ...] = modalities.names()
TEXT_BLOCKS: tuple[str, ...] = modalities.text_blocks()


def block_dims(described: dict[str, Any]) -> dict[str, int]:
    """Fused block widths from EncoderInfo per role (``ModelSet.describe()`` or the manifest's ``models``)."""
    widths = {role: int(info.get("dim") or 0) for role, info in described.items() if isinstance(info, dict)}
    return modalities.block_dims(widths)


class BlockLayout:
    """Where each modality's block sits in a fused vector: all that per-modality contributions need.

    Numpy only, so a query by item id explains its scores without importing torch for the fusion
    model (``Fusion.contributions`` gives the same numbers; a test checks it).
    """

    def __init__(self, dims: dict[str, int]) -> None:
        self.modalities = modalities.check_names(dims, "block layout")
        self.dims = {m: int(dims[m]) for m in self.modalities}
        self.slices: dict[str, slice] = {}
        start = 0
        for m in self.modalities:
            self.slices[m] = slice(start, start + self.dims[m])
            start += self.dims[m]
        self.dim = start

    def contributions(self, query: np.ndarray, items: np.ndarray) -> list[dict[str, float]]:
        """Per-modality block inner products of each item with the query; they sum to the score."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        x = np.atleast_2d(np.asarray(items, dtype=np.float32))
        if q.shape[0] != self.dim or x.shape[1] != self.dim:
            raise ValueError(
                f"contributions: expected vectors of dim {self.dim}, got {q.shape} and {x.shape}"
            )
        out: list[dict[str, float]] = [{} for _ in range(x.shape[0])]
        for m, sl in self.slices.items():
            if not np.any(q[sl]):
                continue
            part = x[:, sl] @ q[sl]
            for i, value in enumerate(part):
                if np.any(x[i, sl]):
                    out[i][m] = float(value)
        return out


class SearchableIndex(Protocol):
    def search(
        self, queries: np.ndarray, k: int, allowed_keys: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class SearchFilters:
    """Restrict results by media kind, minimum duration (seconds) and a user tag."""

    kind: str | None = None
    min_duration: float | None = None
    tag: str | None = None

    def active(self) -> bool:
        return any(v is not None for v in (self.kind, self.min_duration, self.tag))

    def matches(self, record: ItemRecord) -> bool:
        if self.kind is not None and record.kind != self.kind:
            return False
        if self.min_duration is not None and (record.duration_s or 0.0) < self.min_duration:
            return False
        return not (self.tag is not None and self.tag.lower() not in {t.lower() for t in record.tags})


@dataclass
class SearchHit:
    """One result row, in the JSON shape the CLI and the future HTTP API return."""

    item_id: str
    path: str | None
    title: str
    kind: str
    score: float
    contributions: dict[str, float] = field(default_factory=dict)
    attention: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResponse:
    query: dict[str, Any]
    results: list[SearchHit]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "results": [r.to_dict() for r in self.results]}


def allowed_keys(store: LibraryStore, filters: SearchFilters) -> np.ndarray | None:
    """Keys passing the filters, or None when no filter is set (search everything)."""
    if not filters.active():
        return None
    keys = [r.key for r in store.items(kind=filters.kind) if filters.matches(r) and r.key is not None]
    return np.asarray(keys, dtype=np.int64)


def search_vector(
    store: LibraryStore,
    index: SearchableIndex,
    fusion: Any,
    query: np.ndarray,
    k: int,
    filters: SearchFilters | None = None,
    exclude_keys: Sequence[int] = (),
) -> list[SearchHit]:
    """Top-k items for one fused query vector, filtered, with contributions and attention weights."""
    if k <= 0:
        raise ValueError("k must be a positive number of results")
    filters = filters or SearchFilters()
    allowed = allowed_keys(store, filters)
    if allowed is not None and allowed.size == 0:
        return []
    excluded = set(int(x) for x in exclude_keys)
    scores, keys = index.search(
        query.reshape(1, -1).astype(np.float32), k + len(excluded), allowed_keys=allowed
    )
    pairs = [
        (float(s), int(key))
        for s, key in zip(scores[0], keys[0], strict=True)
        if key >= 0 and int(key) not in excluded
    ]
    pairs = pairs[:k]
    if not pairs:
        return []
    hit_keys = [key for _, key in pairs]
    records = store.get_by_keys(hit_keys)
    fused = store.fused(hit_keys)
    weights = store.attention(hit_keys)
    parts = fusion.contributions(query, fused)
    hits: list[SearchHit] = []
    for (score, _key), record, part, attention in zip(pairs, records, parts, weights, strict=True):
        if record is None:  # removed between the index search and this read
            continue
        hits.append(
            SearchHit(
                item_id=record.item_id,
                path=record.path,
                title=record.title,
                kind=record.kind,
                score=round(score, 6),
                contributions={m: round(v, 6) for m, v in part.items()},
                attention={m: round(float(w), 4) for m, w in attention.items()},
            )
        )
    return hits
