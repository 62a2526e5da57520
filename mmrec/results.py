"""Typed results of ``mmrec.Library``: what the CLI prints and the HTTP server returns.

Each result is a dataclass with ``to_dict()`` giving a JSON-ready dict, so the two front ends
share one shape and a client never sees a loose ``Any``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmrec.events.records import RowError, RowWarning
from mmrec.recommend.recommender import Recommendation
from mmrec.store import ItemRecord

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class ItemSummary:
    """One catalog row as a list shows it; ``path_name`` is the file name only, never the full path."""

    item_id: str
    title: str
    kind: str
    duration_s: float | None
    path_name: str | None
    has_thumbnail: bool = False

    @classmethod
    def from_record(cls, record: ItemRecord, has_thumbnail: bool = False) -> ItemSummary:
        return cls(
            item_id=record.item_id,
            title=record.title,
            kind=record.kind,
            duration_s=record.duration_s,
            path_name=Path(record.path).name if record.path else None,
            has_thumbnail=has_thumbnail,
        )

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class ItemPage:
    """A page of items in key order; ``total`` counts every item matching the filters."""

    items: list[ItemSummary]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> JSONDict:
        return {
            "items": [i.to_dict() for i in self.items],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class ItemDetail:
    """Everything the library knows about one item that a user may see (no absolute path)."""

    item_id: str
    title: str
    kind: str
    duration_s: float | None
    path_name: str | None
    has_thumbnail: bool
    description: str
    tags: list[str]
    width: int | None
    height: int | None
    status: str
    modalities: list[str]
    attention: dict[str, float]
    visual_tags: list[tuple[str, float]] = field(default_factory=list)
    transcript: str | None = None
    language: str | None = None
    speech_gate: JSONDict | None = None  # kept or dropped, why, signals; None if encoded before the gate

    def to_dict(self) -> JSONDict:
        out = asdict(self)
        out["visual_tags"] = [[label, float(score)] for label, score in self.visual_tags]
        return out


@dataclass(frozen=True)
class InterestSummary:
    weight: float
    keywords: list[str]
    items: list[int]

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class NegativeSummary:
    weight: float
    items: list[int]

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class ProfileSummary:
    """A user's profile without its vectors: interests, negatives, keywords, modality preferences."""

    user_id: str
    interests: list[InterestSummary]
    negatives: list[NegativeSummary]
    keywords: dict[str, float]
    modality_prefs: dict[str, float]
    seen: int
    disliked: list[int]
    description: str | None
    n_events: int
    updated: float | None

    @classmethod
    def from_summary(cls, data: JSONDict) -> ProfileSummary:
        """From ``UserProfile.to_summary()`` (the CLI's long-standing JSON shape)."""
        return cls(
            user_id=str(data["user_id"]),
            interests=[
                InterestSummary(float(i["weight"]), list(i["keywords"]), [int(k) for k in i["items"]])
                for i in data["interests"]
            ],
            negatives=[
                NegativeSummary(float(n["weight"]), [int(k) for k in n["items"]]) for n in data["negatives"]
            ],
            keywords={str(k): float(v) for k, v in data["keywords"].items()},
            modality_prefs={str(m): float(v) for m, v in data["modality_prefs"].items()},
            seen=int(data["seen"]),
            disliked=[int(k) for k in data["disliked"]],
            description=data.get("description"),
            n_events=int(data["n_events"]),
            updated=None if data.get("updated") is None else float(data["updated"]),
        )

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class RecommendationList:
    """Recommendations for one user, best first, each with its reasons."""

    user_id: str
    k: int
    diversity: float
    explore: float | None
    results: list[Recommendation]

    def to_dict(self) -> JSONDict:
        return {
            "user": self.user_id,
            "k": self.k,
            "diversity": self.diversity,
            "explore": self.explore,
            "results": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class IngestResult:
    """What storing events or comments did; a row error's ``line`` is 1-based (file line or list index)."""

    kind: str
    added: int
    duplicates: int
    errors: list[RowError]
    users: list[str]
    profiles_updated: int
    warnings: list[RowWarning] = field(default_factory=list)  # rows kept but changed (truncated comments)

    def to_dict(self) -> JSONDict:
        return {
            "kind": self.kind,
            "added": self.added,
            "duplicates": self.duplicates,
            "errors": [asdict(e) for e in self.errors],
            "warnings": [asdict(w) for w in self.warnings],
            "users": list(self.users),
            "profiles_updated": self.profiles_updated,
        }


@dataclass(frozen=True)
class RefitResult:
    """What an on-demand refit of the collaborative hybrid did (``mmrec refit``, ``POST /api/refit``).

    ``users``/``items``/``interactions`` are what the new model was fitted on (interactions: distinct
    user–item pairs with a positive event), ``events`` the events stored when it read them,
    ``pending_events`` those folded in since the previous fit of this process, ``refits_recorded``
    the count in ``events.sqlite`` that tells other processes' Libraries to fit again.
    """

    library: str
    fitted: bool
    users: int
    items: int
    interactions: int
    events: int
    pending_events: int
    seconds: float
    version: str | None
    version_before: str | None
    refits_recorded: int

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class DescribeResult:
    """A stored self-description and the width of the query vector it became."""

    user_id: str
    description: str
    dim: int

    def to_dict(self) -> JSONDict:
        return {"user": self.user_id, "description": self.description, "dim": self.dim}


@dataclass(frozen=True)
class CommentAnalysis:
    """One comment understood: language, polarity in [-1, 1] and weighted keywords."""

    text: str
    language: str
    sentiment: float
    keywords: list[tuple[str, float]]

    def to_dict(self) -> JSONDict:
        return {
            "text": self.text,
            "language": self.language,
            "sentiment": self.sentiment,
            "keywords": [[k, float(w)] for k, w in self.keywords],
        }


@dataclass(frozen=True)
class IndexInfo:
    """What the FAISS index is (factory, size, width) and which store sequence it reflects."""

    factory: str | None
    ntotal: int
    seq: int
    folder: str
    dim: int | None = None
    metric: str | None = None
    ids: str | None = None
    gpu: bool = False
    bytes: int | None = None
    choice: str | None = None  # why the automatic choice picked this factory (None: the user named it)
    extra: dict[str, str | float] = field(default_factory=dict)  # ef_search, nprobe, shards... by index type

    @classmethod
    def from_describe(cls, data: JSONDict) -> IndexInfo:
        known = {"factory", "ntotal", "seq", "folder", "dim", "metric", "ids", "gpu", "bytes", "choice"}
        return cls(
            factory=data.get("factory"),
            ntotal=int(data.get("ntotal") or 0),
            seq=int(data.get("seq") or 0),
            folder=str(data.get("folder", "")),
            dim=None if data.get("dim") is None else int(data["dim"]),
            metric=data.get("metric"),
            ids=data.get("ids"),
            gpu=bool(data.get("gpu", False)),
            bytes=None if data.get("bytes") is None else int(data["bytes"]),
            choice=None if data.get("choice") is None else str(data["choice"]),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> JSONDict:
        out = asdict(self)
        out.update(out.pop("extra"))
        return out


@dataclass(frozen=True)
class Failure:
    """A file that could not be encoded, with why and when (unix seconds)."""

    path: str
    reason: str
    time: float

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class LibraryInfo:
    """Counts, models, fusion and index of a library: what ``mmrec info`` prints."""

    library: str
    items: int
    by_kind: dict[str, int]
    by_status: dict[str, int]
    failures: int
    modalities: dict[str, dict[str, int]]
    files: dict[str, int]
    bytes_on_disk: int
    seq: int
    schema_version: int
    manifest: JSONDict
    models_profile: str | None
    fusion_version: str
    index: IndexInfo | None
    index_error: str | None = None  # why the index could not be read (it names `mmrec reindex`)
    hubness: HubnessInfo | None = None  # of the fused vectors, on a bounded sample (None: < 2 items)

    def to_dict(self) -> JSONDict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("index", "hubness")}
        out["index"] = None if self.index is None else self.index.to_dict()
        out["hubness"] = None if self.hubness is None else asdict(self.hubness)
        return out


@dataclass(frozen=True)
class HubnessInfo:
    """How much a few items crowd everyone's nearest neighbours (``mmrec.evaluate.hubness``), measured
    at read time on a seeded sample of ``sample`` of the library's ``items`` fused vectors."""

    k: int
    sample: int
    items: int
    max_occurrence: int  # in how many of the sample's top-k lists the most frequent item appears
    max_share: float  # max_occurrence / sample
    skewness: float  # of the k-occurrence distribution (hubs make it large; 0 is symmetric)
    top_item: str | None  # the most frequent item's id


@dataclass(frozen=True)
class InspectReport:
    """What mmrec understands of one media file (``mmrec inspect``): probe, frames, tags, vectors."""

    path: str
    probe: JSONDict
    frames: JSONDict | None
    audio: dict[str, JSONDict]
    visual_tags: list[tuple[str, float]]
    has_speech: bool | None
    transcript: str | None
    language: str | None
    language_probability: float | None
    vectors: dict[str, JSONDict]
    warnings: list[str]
    speech_gate: JSONDict | None = None  # encoders.base.SpeechGate.to_dict(): kept, reason, heard, signals

    def to_dict(self) -> JSONDict:
        out = asdict(self)
        out["visual_tags"] = [[label, float(score)] for label, score in self.visual_tags]
        return out
