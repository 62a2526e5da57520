"""Forgetting a user and exporting what is held about them (``mmrec forget``, ``mmrec export-user``).

Where a user's data lives, and how each place forgets it:

- ``events.sqlite``: their events, comments (with the analyses stored beside them), served lists and
  profile row (interest vectors, keywords, self-description and its vector). One transaction deletes
  them with ``secure_delete`` on; then VACUUM and ``wal_checkpoint(TRUNCATE)`` leave no copy in free
  pages, stale cell copies or the WAL (:meth:`EventStore.scrub`).
- Popularity: counted from stored events at query time, so deleting the events takes the user's share
  out; the fitted model's own counts are decremented (``Popularity.forget_rows``).
- The collaborative model lives only in memory (it is never saved): a loaded one forgets the user by a
  Sherman–Morrison downdate of EASE's kept inverse, or is refitted (``Recommender.forget_user``); the
  receipt records the model version that still held the user.
- ``catalog.sqlite``, vectors, index, fusion checkpoints: items only, no user rows.
- ``$MMREC_CACHE``: models, ONNX exports, datasets and the evaluation embedding cache (public item texts);
  comments and self-descriptions are embedded in memory and never written there.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from mmrec.events.store import EventStore
from mmrec.profiles.store import ProfileStore
from mmrec.profiles.update import event_weight
from mmrec.recommend.recommender import UnknownUserError

JSONDict = dict[str, Any]

NOT_ON_DISK = [
    "catalog.sqlite, vectors/, index/, fusion/: items only, no user rows",
    "$MMREC_CACHE: no user text or embedding is ever written there (models, datasets, public item texts)",
]


class NothingHeldError(UnknownUserError):
    """``forget``/``export-user`` of a user the library holds nothing about (already forgotten, or a typo)."""

    def __init__(self, user_id: str, action: str) -> None:
        super().__init__(user_id)
        self.args = (
            f"{action}: the library holds nothing about user {user_id!r} (no events, comments, served "
            "lists or profile): already forgotten, or a different id (`mmrec export-user` shows what is held)",
        )


@dataclass(frozen=True)
class ModelErasure:
    """What happened to one model that may have been fitted on the user."""

    model: str
    method: str  # "sherman-morrison downdate", "refit", "none"
    held_user: bool
    version_before: str | None  # the version that still held the user (None: no model loaded)
    version_after: str | None
    note: str = ""

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class SqliteScrub:
    """One SQLite file after the erasure: rewritten, WAL emptied, free pages left."""

    file: str
    secure_delete: bool
    vacuumed: bool
    wal_truncated: bool
    wal_bytes: int
    free_pages: int

    def to_dict(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class ErasureReceipt:
    """What ``forget`` removed, where, and when: printed by ``mmrec forget`` and ``DELETE /api/users/{id}``."""

    user_id: str
    library: str
    erased_at: float  # unix time
    removed: dict[str, int]  # events, comments, comment_analyses, served, profiles, self_description
    popularity_items: int  # items whose popularity count lost this user
    models: list[ModelErasure]
    sqlite: list[SqliteScrub]
    memory: list[str]  # in-process caches cleared
    not_on_disk: list[str] = field(default_factory=lambda: list(NOT_ON_DISK))
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(v for k, v in self.removed.items() if k not in ("comment_analyses", "self_description"))

    def to_dict(self) -> JSONDict:
        return {
            "user_id": self.user_id,
            "library": self.library,
            "erased_at": self.erased_at,
            "erased_at_iso": _iso(self.erased_at),
            "removed": dict(self.removed),
            "total_rows": self.total_rows,
            "popularity_items": self.popularity_items,
            "models": [m.to_dict() for m in self.models],
            "sqlite": [s.to_dict() for s in self.sqlite],
            "memory": list(self.memory),
            "not_on_disk": list(self.not_on_disk),
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class UserExport:
    """Everything the library holds about one user (``mmrec export-user``, ``GET /api/users/{id}/export``)."""

    user_id: str
    library: str
    exported_at: float
    events: list[JSONDict]
    comments: list[JSONDict]  # each with its stored analysis: language, sentiment, keywords
    served: list[JSONDict]
    profile: JSONDict | None  # the stored profile's summary (vectors left out), None when none is stored
    description: str

    def to_dict(self) -> JSONDict:
        return {
            "user_id": self.user_id,
            "library": self.library,
            "exported_at": self.exported_at,
            "exported_at_iso": _iso(self.exported_at),
            "counts": {
                "events": len(self.events),
                "comments": len(self.comments),
                "served": len(self.served),
                "profile": int(self.profile is not None),
            },
            "events": list(self.events),
            "comments": list(self.comments),
            "served": list(self.served),
            "profile": self.profile,
            "description": self.description,
        }

    @property
    def is_empty(self) -> bool:
        return not (self.events or self.comments or self.served or self.profile is not None)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def export_user(events: EventStore, user_id: str, library: str) -> UserExport:
    """Read every stored row of ``user_id`` (reads only)."""
    profile = ProfileStore(events).get(user_id)
    summary = profile.to_summary() if profile is not None else None
    return UserExport(
        user_id=user_id,
        library=library,
        exported_at=time.time(),
        events=[
            {"item_id": e.item_id, "event": e.event, "value": e.value, "timestamp": e.timestamp}
            for e in events.events(user_id)
        ],
        comments=[
            {
                "item_id": c.record.item_id,
                "text": c.record.text,
                "timestamp": c.record.timestamp,
                "language": c.language,
                "sentiment": c.sentiment,
                "keywords": [[k, w] for k, w in c.keywords],
            }
            for c in events.comments(user_id)
        ],
        served=[{"item_id": i, "ts": ts} for i, ts in events.served_rows(user_id)],
        profile=summary,
        description=profile.description if profile is not None else "",
    )


@dataclass(frozen=True)
class StoreErasure:
    """The on-disk half of a forget: rows removed and the state of the scrubbed file."""

    removed: dict[str, int]
    popularity_items: int
    scrub: SqliteScrub


def erase_from_store(events: EventStore, user_id: str) -> StoreErasure:
    """Delete the user's rows (one transaction, ``secure_delete``), then VACUUM and truncate the WAL."""
    profile = ProfileStore(events).get(user_id)
    positives = {e.item_id for e in events.events(user_id) if event_weight(e) > 0}
    removed = events.delete_user(user_id)
    removed["comment_analyses"] = removed.get("comments", 0)  # stored in the same rows
    removed["self_description"] = int(profile is not None and bool(profile.description))
    scrubbed = events.scrub()
    return StoreErasure(
        removed=removed,
        popularity_items=len(positives),
        scrub=SqliteScrub(
            file=str(scrubbed["file"]),
            secure_delete=bool(scrubbed["secure_delete"]),
            vacuumed=bool(scrubbed["vacuumed"]),
            wal_truncated=bool(scrubbed["wal_truncated"]),
            wal_bytes=int(scrubbed["wal_bytes"]),  # type: ignore[call-overload]
            free_pages=int(scrubbed["free_pages"]),  # type: ignore[call-overload]
        ),
    )


def model_erasure(done: dict[str, object] | None) -> ModelErasure:
    """The receipt line for the collaborative model from ``Recommender.forget_user``'s answer."""
    name = "collaborative hybrid (EASE + popularity + content mapping)"
    if done is None:
        return ModelErasure(
            name,
            "none",
            False,
            None,
            None,
            "no model loaded in this process; models are never saved, the next fit reads the remaining events",
        )
    method = str(done.get("method", "none"))
    note = ""
    if method == "sherman-morrison downdate":
        note = "EASE inverse downdated exactly; popularity decremented; content mapping re-solved"
        if done.get("tuned_with_user"):
            note += "; blend weights and λ tuned with the user present are kept (grid choices, no rows)"
    before, after = done.get("version_before"), done.get("version_after")
    return ModelErasure(
        name,
        method,
        bool(done.get("held_user")),
        None if before is None else str(before),
        None if after is None else str(after),
        note,
    )
