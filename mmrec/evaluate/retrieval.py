"""Retrieval protocols on a library, through the calls users make.

- ``same-label``: leave-one-out item -> item. Every labelled item asks ``Library.similar(item_id, k)``
  (the query item is never its own neighbour); a neighbour is right when it has the same label.
  Top-1 accuracy and P@k overall and per label, and the hubness of the top-k lists.
- ``text-to-item``: each query text asks ``Library.search(text)``; its right items are the rows
  naming it. R@1/5/10 (a right item within the first k) and MRR, overall and per language.

Nothing here builds vectors or indexes of its own: the figures are what ``mmrec similar`` and
``mmrec search`` give. Files are UTF-8 CSV with a header: labels ``item_id,label``, queries
``query,item_id[,language]`` (several rows per query give several right items).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from mmrec.errors import InvalidInputError
from mmrec.evaluate import metrics as M
from mmrec.search import SEARCH_MODES, SearchResponse
from mmrec.store import LibraryStore

KS = (1, 5, 10)
MAX_DEPTH = 1000  # Library queries return at most this many results


class RetrievalLibrary(Protocol):
    """What the protocols call: ``mmrec.api.Library`` (the core layer never imports it)."""

    store: LibraryStore

    def similar(self, query: str, k: int = 10) -> SearchResponse: ...

    def search(self, text: str, k: int = 10, *, mode: str = "hybrid") -> SearchResponse: ...


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, str]


def _rows(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> list[_Row]:
    """Rows of a UTF-8 CSV file with a header holding ``required``; values stripped, blank rows skipped."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in required if c not in header]
            if missing:
                raise InvalidInputError(
                    str(path),
                    "header",
                    f"needs the columns {','.join(required)}"
                    + (f" (optional: {','.join(optional)})" if optional else "")
                    + f"; found {','.join(header) or 'no header'}",
                )
            reader.fieldnames = header
            rows = []
            for raw in reader:
                values = {c: (raw.get(c) or "").strip() for c in (*required, *optional) if c in header}
                if any(values.values()):
                    rows.append(_Row(reader.line_num, values))
            return rows
    except FileNotFoundError:
        raise InvalidInputError(str(path), "file", "no such file") from None
    except OSError as exc:
        raise InvalidInputError(str(path), "file", f"cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(str(path), "file", f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InvalidInputError(str(path), "file", f"not a readable CSV file ({exc})") from None


def _library_items(library: RetrievalLibrary) -> list[str]:
    """Ids of the library's encoded items, in key order (failed items are not searchable)."""
    return [r.item_id for r in library.store.items() if r.key is not None]


def _known(item_id: str, known: Collection[str], path: Path, line: int, library: RetrievalLibrary) -> str:
    if not item_id:
        raise InvalidInputError(f"{path}:{line}", "item_id", "is empty")
    if item_id not in known:
        raise InvalidInputError(
            f"{path}:{line}",
            "item_id",
            f"unknown item id {item_id!r}: the library {library.store.path} has no encoded item by that id"
            " (a file that failed to encode has none: `mmrec info --failures` lists them)",
        )
    return item_id


def read_labels(path: Path, library: RetrievalLibrary, known: Collection[str]) -> dict[str, str]:
    """``item_id -> label``; an empty label leaves the item unlabelled, a second label is refused."""
    labels: dict[str, str] = {}
    for row in _rows(path, ("item_id", "label")):
        item_id = _known(row.values["item_id"], known, path, row.line, library)
        label = row.values["label"]
        if item_id in labels and labels[item_id] != label:
            raise InvalidInputError(
                f"{path}:{row.line}",
                "label",
                f"item {item_id!r} already has the label {labels[item_id]!r}, here {label!r}",
            )
        labels[item_id] = label
    return {i: lab for i, lab in labels.items() if lab}


@dataclass(frozen=True)
class TextQuery:
    """One query text, its right items and (when the file says) its language."""

    text: str
    items: frozenset[str]
    language: str | None
    line: int


def read_queries(path: Path, library: RetrievalLibrary, known: Collection[str]) -> list[TextQuery]:
    """Queries in file order; rows repeating a query add right items to it."""
    found: dict[str, tuple[set[str], str | None, int]] = {}
    for row in _rows(path, ("query", "item_id"), ("language",)):
        text = row.values["query"]
        if not text:
            raise InvalidInputError(f"{path}:{row.line}", "query", "is empty")
        item_id = _known(row.values["item_id"], known, path, row.line, library)
        language = row.values.get("language") or None
        items, first_language, first_line = found.setdefault(text, (set(), language, row.line))
        if language != first_language:
            raise InvalidInputError(
                f"{path}:{row.line}",
                "language",
                f"the query was given the language {first_language!r} on line {first_line}, here {language!r}",
            )
        items.add(item_id)
    if not found:
        raise InvalidInputError(str(path), "file", "holds no query row")
    return [TextQuery(t, frozenset(items), lang, line) for t, (items, lang, line) in found.items()]


def _round(x: float) -> float:
    return round(float(x), 4)


@dataclass(frozen=True)
class LabelScores:
    """Leave-one-out figures of one group of query items."""

    queries: int
    top1: float
    precision: float


@dataclass(frozen=True)
class SameLabelReport:
    """``same-label``: leave-one-out top-1 and P@k (per label too) and the hubness of the lists.

    Items without a label are not asked (``unlabelled``); nor are items alone with their label
    (``singletons``: no right answer exists). Both still count as neighbours, as wrong ones.
    ``hubness`` is over the top-k lists of the asked items, across all ``items`` of the library.
    """

    library: str
    labels: str
    k: int
    items: int
    unlabelled: int
    singletons: int
    overall: LabelScores
    per_label: dict[str, LabelScores]
    hubness: M.Hubness
    hub_ids: tuple[tuple[str, int], ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        def scores(s: LabelScores) -> dict[str, float | int]:
            return {"queries": s.queries, "top1": _round(s.top1), f"P@{self.k}": _round(s.precision)}

        hub = self.hubness
        return {
            "protocol": "same-label",
            "library": self.library,
            "labels": self.labels,
            "k": self.k,
            "items": self.items,
            "skipped": {"unlabelled": self.unlabelled, "singleton_label": self.singletons},
            "metrics": scores(self.overall),
            "per_label": {lab: scores(s) for lab, s in self.per_label.items()},
            "hubness": {
                "k": hub.k,
                "lists": hub.lists,
                "max_occurrence": hub.max_occurrence,
                "max_share": _round(hub.max_share),
                "skewness": _round(hub.skewness),
                "top_items": [[i, n] for i, n in self.hub_ids],
            },
        }


def same_label(
    library: RetrievalLibrary,
    labels: str | Path,
    k: int = 10,
    *,
    queries: Collection[str] | None = None,
) -> SameLabelReport:
    """Leave-one-out same-label retrieval with ``Library.similar`` by item id.

    ``queries`` (Python only) asks only these items (e.g. a held-out share); every item of the
    library still counts as a neighbour.
    """
    if not 1 <= k <= MAX_DEPTH:
        raise InvalidInputError("evaluate", "k", f"must be within 1..{MAX_DEPTH}, got {k}")
    path = Path(labels)
    ids = _library_items(library)
    index = {item_id: i for i, item_id in enumerate(ids)}
    label_of = read_labels(path, library, index)
    members: dict[str, set[int]] = defaultdict(set)
    for item_id, lab in label_of.items():
        members[lab].add(index[item_id])
    unlabelled = len(ids) - len(label_of)
    singletons = sum(1 for m in members.values() if len(m) == 1)
    asked = [
        i
        for i in ids
        if i in label_of and len(members[label_of[i]]) > 1 and (queries is None or i in queries)
    ]
    ranked: list[list[int]] = []
    relevant: list[set[int]] = []
    for item_id in asked:
        hits = library.similar(item_id, k=k).results
        ranked.append([index[h.item_id] for h in hits if h.item_id in index])
        relevant.append(members[label_of[item_id]] - {index[item_id]})

    def scores(rows: list[int]) -> LabelScores:
        r = [ranked[j] for j in rows]
        rel = [relevant[j] for j in rows]
        return LabelScores(len(rows), M.hit_rate(r, rel, 1), M.precision_at_k(r, rel, k))

    by_label: dict[str, list[int]] = defaultdict(list)
    for j, item_id in enumerate(asked):
        by_label[label_of[item_id]].append(j)
    lists = np.full((len(ranked), k), -1, dtype=np.int64)
    for j, row in enumerate(ranked):
        lists[j, : len(row)] = row[:k]
    hub = M.hubness(lists, max(len(ids), 1), k)
    return SameLabelReport(
        library=str(library.store.path),
        labels=str(path),
        k=k,
        items=len(ids),
        unlabelled=unlabelled,
        singletons=singletons,
        overall=scores(list(range(len(asked)))),
        per_label={lab: scores(rows) for lab, rows in sorted(by_label.items())},
        hubness=hub,
        hub_ids=tuple((ids[i], n) for i, n in hub.top_items),
    )


@dataclass(frozen=True)
class QueryScores:
    """Text -> item figures of one group of queries."""

    queries: int
    recall: dict[int, float]
    mrr: float


@dataclass(frozen=True)
class TextToItemReport:
    """``text-to-item``: R@k (a right item within the first k results) and MRR (over ``depth`` results)."""

    library: str
    queries_file: str
    mode: str
    depth: int
    overall: QueryScores
    per_language: dict[str, QueryScores]

    def to_dict(self) -> dict[str, object]:
        def scores(s: QueryScores) -> dict[str, float | int]:
            return {
                "queries": s.queries,
                **{f"R@{k}": _round(v) for k, v in s.recall.items()},
                "MRR": _round(s.mrr),
            }

        return {
            "protocol": "text-to-item",
            "library": self.library,
            "queries_file": self.queries_file,
            "mode": self.mode,
            "depth": self.depth,
            "metrics": scores(self.overall),
            "per_language": {lang: scores(s) for lang, s in self.per_language.items()},
        }


def text_to_item(
    library: RetrievalLibrary,
    queries: str | Path,
    mode: str = "hybrid",
    *,
    depth: int = 100,
    gallery: Collection[str] | None = None,
) -> TextToItemReport:
    """Text -> item retrieval with ``Library.search``; MRR counts a right item found within ``depth``.

    ``gallery`` (Python only) ranks among these items alone: each search goes deep enough to see
    the whole library and the other items are dropped, which is the ranking a search restricted to
    them would give.
    """
    if mode not in SEARCH_MODES:
        raise InvalidInputError("evaluate", "mode", f"must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    path = Path(queries)
    ids = _library_items(library)
    index = {item_id: i for i, item_id in enumerate(ids)}
    rows = read_queries(path, library, index)
    if gallery is not None:
        if len(ids) > MAX_DEPTH:
            raise InvalidInputError("evaluate", "gallery", f"needs a library of at most {MAX_DEPTH} items")
        depth = max(len(ids), 1)
        outside = sorted(i for q in rows for i in q.items if i not in gallery)
        if outside:
            raise InvalidInputError(str(path), "item_id", f"right items outside the gallery: {outside[:5]}")
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidInputError("evaluate", "depth", f"must be within 1..{MAX_DEPTH}, got {depth}")
    used = mode
    ranked: list[list[int]] = []
    for q in rows:
        hits = library.search(q.text, k=depth, mode=mode).results
        ranked.append([index[h.item_id] for h in hits if gallery is None or h.item_id in gallery])
    relevant = [{index[i] for i in q.items} for q in rows]

    def scores(sel: list[int]) -> QueryScores:
        r = [ranked[j] for j in sel]
        rel = [relevant[j] for j in sel]
        return QueryScores(len(sel), {k: M.hit_rate(r, rel, k) for k in KS}, M.reciprocal_rank(r, rel))

    by_language: dict[str, list[int]] = defaultdict(list)
    for j, q in enumerate(rows):
        if q.language is not None:
            by_language[q.language].append(j)
    return TextToItemReport(
        library=str(library.store.path),
        queries_file=str(path),
        mode=used,
        depth=depth,
        overall=scores(list(range(len(rows)))),
        per_language={lang: scores(sel) for lang, sel in sorted(by_language.items())},
    )
