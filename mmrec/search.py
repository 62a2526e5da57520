"""Query the fused index and the full-text index: filters, exclusions, modes, and why each item matched.

A fused vector is a block-wise concatenation (one block per modality), so the inner product
between a query and an item splits exactly into per-block dot products (``Fusion.contributions``).
Those parts are shown with every result: they say which modality made an item match.

Text search has three modes (:data:`SEARCH_MODES`): ``dense`` (the fused index alone), ``lexical``
(the catalog's FTS5 table, bm25: exact words, ``mmrec.store.lexical``) and ``hybrid`` (the default):
reciprocal rank fusion of the two rankings. RRF uses ranks only, so it needs no calibration between
a cosine (squeezed into a narrow band by E5) and a bm25 score (unbounded, query-dependent), and an
item found by only one side still competes. Each hit's :class:`MatchInfo` says which side found it
at which rank, and which stored words matched, per field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from mmrec import modalities
from mmrec.errors import InvalidInputError, ItemNotFoundError
from mmrec.store import ItemRecord, LibraryStore
from mmrec.store.library import LexicalIndexMissingError

# The block order of fused vectors and the blocks a text query fills (``mmrec.modalities``).
FUSED_BLOCK_ORDER: tuple[str, ...] = modalities.names()
TEXT_BLOCKS: tuple[str, ...] = modalities.text_blocks()
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "lexical")
RRF_K = 60  # the usual reciprocal-rank-fusion constant: rank 1 scores 1/61, rank 10 1/70
RRF_DEPTH = 100  # candidates each side contributes to the fusion (beyond k: a rank-30 item may win)


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
class MatchInfo:
    """Which side of a text search found an item: its 1-based rank in the dense and in the lexical
    ranking (None where that side did not rank it), the raw score of each side, and the stored
    words the query matched per field (``title``, ``description``, ``tags``, ``transcript``,
    ``vtags``)."""

    dense_rank: int | None = None
    lexical_rank: int | None = None
    dense_score: float | None = None
    lexical_score: float | None = None
    words: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class SearchHit:
    """One result row, in the JSON shape the CLI and the HTTP API return.

    ``score`` is what the ranking used: the cosine for ``dense`` (and for similar-item queries),
    bm25 relevance for ``lexical``, the reciprocal-rank-fusion sum for ``hybrid``. ``contributions``
    split the dense cosine (``matched.dense_score`` in text searches) by modality.
    """

    item_id: str
    path: str | None
    title: str
    kind: str
    score: float
    contributions: dict[str, float] = field(default_factory=dict)
    attention: dict[str, float] = field(default_factory=dict)
    matched: MatchInfo | None = None

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


def check_mode(mode: str) -> str:
    """The search mode, or an InvalidInputError naming ``mode``."""
    if mode not in SEARCH_MODES:
        raise InvalidInputError("search", "mode", f"{mode!r} is not one of {', '.join(SEARCH_MODES)}")
    return mode


def _dense_pairs(
    index: SearchableIndex, query: np.ndarray, k: int, allowed: np.ndarray | None, excluded: set[int]
) -> list[tuple[float, int]]:
    """(cosine, key) of the best ``k`` items in the fused index, best first."""
    scores, keys = index.search(
        query.reshape(1, -1).astype(np.float32), k + len(excluded), allowed_keys=allowed
    )
    pairs = [
        (float(s), int(key))
        for s, key in zip(scores[0], keys[0], strict=True)
        if key >= 0 and int(key) not in excluded
    ]
    return pairs[:k]


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
    pairs = _dense_pairs(index, query, k, allowed, set(int(x) for x in exclude_keys))
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
        hits.append(_hit(record, score, part, attention))
    return hits


def _hit(
    record: ItemRecord,
    score: float,
    part: dict[str, float],
    attention: dict[str, float],
    matched: MatchInfo | None = None,
) -> SearchHit:
    """One result from its catalog record, with the rounding every search answers in."""
    return SearchHit(
        item_id=record.item_id,
        path=record.path,
        title=record.title,
        kind=record.kind,
        score=round(score, 6),
        contributions={m: round(v, 6) for m, v in part.items()},
        attention={m: round(float(w), 4) for m, w in attention.items()},
        matched=matched,
    )


def fuse_ranks(dense: Sequence[int], lexical: Sequence[int], k0: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of two rankings (keys, best first): ``sum 1/(k0 + rank)`` per key,
    best first. Ties (an item first on one side against one first on the other) go to the item
    with the better lexical rank: a query's exact words are the stronger evidence."""
    score: dict[int, float] = {}
    lex_rank = {int(key): r for r, key in enumerate(lexical, 1)}
    for ranking in (dense, lexical):
        for r, key in enumerate(ranking, 1):
            score[int(key)] = score.get(int(key), 0.0) + 1.0 / (k0 + r)
    big = len(lexical) + 1
    order = sorted(score, key=lambda key: (-score[key], lex_rank.get(key, big), key))
    return [(key, score[key]) for key in order]


def search_text(
    store: LibraryStore,
    index: SearchableIndex | None,
    fusion: Any,
    query: np.ndarray | None,
    text: str,
    k: int,
    filters: SearchFilters | None = None,
    mode: str = "hybrid",
) -> SearchResponse:
    """Text -> items in one of :data:`SEARCH_MODES`.

    ``query`` is the text's fused query vector (needed by ``dense`` and ``hybrid``; ``lexical``
    needs neither it, the index nor the fusion). Filters apply to both sides. On a library made
    before full-text search, ``lexical`` raises ``LexicalIndexMissingError`` (it names the command
    that builds the table) and ``hybrid`` answers from the dense side alone, saying so in
    ``query["lexical"]``.
    """
    check_mode(mode)
    if k <= 0:
        raise ValueError("k must be a positive number of results")
    filters = filters or SearchFilters()
    info: dict[str, Any] = {"text": text, "mode": mode}
    allowed = allowed_keys(store, filters)
    if allowed is not None and allowed.size == 0:
        return SearchResponse(query=info, results=[])
    depth = k if mode != "hybrid" else max(k, RRF_DEPTH)
    dense: list[tuple[float, int]] = []
    if mode != "lexical":
        if index is None or query is None:
            raise ValueError(f"mode {mode!r} needs the fused index and a query vector")
        dense = _dense_pairs(index, query, depth, allowed, set())
    lexical = []
    if mode != "dense":
        allowed_set = None if allowed is None else set(int(x) for x in allowed)
        try:
            lexical = store.lexical_search(
                text, depth, None if allowed_set is None else allowed_set.__contains__
            )
        except LexicalIndexMissingError as exc:
            if mode == "lexical":
                raise
            info["lexical"] = f"unavailable: {exc.reason}"
    if mode == "dense":
        order = [(key, score) for score, key in dense]
    elif mode == "lexical":
        order = [(m.key, m.score) for m in lexical]
    else:
        order = fuse_ranks([key for _, key in dense], [m.key for m in lexical])
    order = order[:k]
    if not order:
        return SearchResponse(query=info, results=[])
    dense_at = {key: (r, score) for r, (score, key) in enumerate(dense, 1)}
    lexical_at = {m.key: m for m in lexical}
    keys = [key for key, _ in order]
    words = store.lexical_words(text, keys) if mode != "dense" else {}
    found = [(pair, rec) for pair, rec in zip(order, store.get_by_keys(keys), strict=True) if rec is not None]
    order = [pair for pair, _ in found]  # an item removed since the ranking was read is left out
    records = [rec for _, rec in found]
    keys = [key for key, _ in order]
    parts: list[dict[str, float]] = [{} for _ in keys]
    cosines: list[float | None] = [None for _ in keys]
    if query is not None and keys:
        try:
            fused = store.fused(keys)
        except ItemNotFoundError:  # removed meanwhile: this answer goes without contributions
            fused = None
        if fused is not None:
            parts = fusion.contributions(query, fused)
            cosines = [float(x) for x in fused @ np.asarray(query, dtype=np.float32).reshape(-1)]
    weights = store.attention(keys)
    hits: list[SearchHit] = []
    for (key, score), record, part, cosine, attention in zip(
        order, records, parts, cosines, weights, strict=True
    ):
        lex = lexical_at.get(key)
        matched = MatchInfo(
            dense_rank=dense_at[key][0] if key in dense_at else None,
            lexical_rank=None if lex is None else lex.rank,
            dense_score=None if cosine is None else round(cosine, 6),
            lexical_score=None if lex is None else lex.score,
            words=words.get(key, {}),
        )
        hits.append(_hit(record, score, part, attention, matched))
    return SearchResponse(query=info, results=hits)
