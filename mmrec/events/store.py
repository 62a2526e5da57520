"""``events.sqlite`` in the library folder: events, analysed comments, served lists and user profiles.

Its own SQLite file (WAL) so ingesting events never contends with the catalog writer. A UNIQUE
constraint over each row's natural key makes re-ingesting a file a no-op.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mmrec.events.records import CommentRecord, EventRecord

FILENAME = "events.sqlite"
# Events that say "shown, not wanted": a serving answered by one of these counts as skipped.
NEGATIVE_EVENTS = ("skip", "dislike")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    value REAL,
    timestamp REAL NOT NULL,
    UNIQUE (user_id, item_id, event, timestamp)
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, timestamp);
CREATE INDEX IF NOT EXISTS events_item ON events (item_id);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    timestamp REAL NOT NULL,
    language TEXT,
    sentiment REAL,
    keywords TEXT,
    analyzer TEXT,
    UNIQUE (user_id, item_id, timestamp, text_hash)
);
CREATE INDEX IF NOT EXISTS comments_user ON comments (user_id, timestamp);
CREATE TABLE IF NOT EXISTS served (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts REAL NOT NULL,
    UNIQUE (user_id, item_id, ts)
);
CREATE INDEX IF NOT EXISTS served_user ON served (user_id, ts);
CREATE TABLE IF NOT EXISTS erasures (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS refits (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    updated REAL NOT NULL
);
"""


class Analysis(Protocol):
    """The fields of ``encoders.comments.CommentAnalysis`` this store keeps (duck-typed: core layer)."""

    language: str
    sentiment: float
    keywords: list[tuple[str, float]]


@dataclass(frozen=True)
class StoredComment:
    """A comment with its analysis, as read back from the store."""

    record: CommentRecord
    language: str | None
    sentiment: float | None
    keywords: list[tuple[str, float]]


@dataclass(frozen=True)
class ServedStat:
    """How one item fared with one user: served ``times_served`` times, last at ``last_served``.

    A serving is *skipped* when the user answered it with a skip or dislike, or ignored it: no event
    on the item before the item was served again and the user had asked for a later list. A serving
    is *engaged* when any other event on the item followed it.
    """

    times_served: int
    last_served: float  # unix time
    times_skipped: int
    times_engaged: int


class _BackgroundCheckpointer:
    """Copies the WAL back into the database from a thread of its own.

    With SQLite's automatic checkpoints, the commit that crosses the threshold pays for copying
    the whole WAL (with 3328-d profiles: p99 23 ms per event against 1.3 ms at p50). A passive
    checkpoint on another connection never blocks writers, so per-event writes stay short.
    """

    def __init__(self, path: Path, interval_s: float = 0.5) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(path, interval_s), name="events-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self, path: Path, interval_s: float) -> None:
        conn = sqlite3.connect(str(path), timeout=30.0)
        try:
            while not self._stop.wait(interval_s):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class EventStore:
    """Thread-safe: one connection guarded by a lock (writes are short transactions)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute("PRAGMA wal_autocheckpoint=0")  # see _BackgroundCheckpointer
        self._checkpointer = _BackgroundCheckpointer(path)

    @classmethod
    def open(cls, library_path: str | Path, create: bool = True) -> EventStore:
        folder = Path(library_path)
        if not folder.is_dir():
            if not create:
                raise FileNotFoundError(f"{folder}: library folder not found")
            folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / FILENAME)

    def close(self) -> None:
        self._checkpointer.stop()
        with self._lock:
            self._conn.close()  # the last connection to close checkpoints what is left

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_events(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        """Insert in one transaction; returns the events that were new (duplicates are ignored)."""
        added: list[EventRecord] = []
        with self._lock, self._conn:
            for e in events:
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO events (user_id, item_id, event, value, timestamp) VALUES (?,?,?,?,?)",
                    (e.user_id, e.item_id, e.event, e.value, e.timestamp),
                )
                if cur.rowcount:
                    added.append(e)
        return added

    def new_comments(self, comments: Sequence[CommentRecord]) -> list[CommentRecord]:
        """The comments not stored yet, so re-ingesting skips analysing them again."""
        with self._lock:
            return [
                c
                for c in comments
                if self._conn.execute(
                    "SELECT 1 FROM comments WHERE user_id=? AND item_id=? AND timestamp=? AND text_hash=?",
                    (c.user_id, c.item_id, c.timestamp, c.text_hash),
                ).fetchone()
                is None
            ]

    def add_comments(
        self, comments: Sequence[CommentRecord], analyses: Sequence[Analysis], analyzer: str = ""
    ) -> list[CommentRecord]:
        """Insert comments with their analyses in one transaction; returns the new ones."""
        added: list[CommentRecord] = []
        with self._lock, self._conn:
            for c, a in zip(comments, analyses, strict=True):
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO comments (user_id, item_id, text, text_hash, timestamp, language,"
                    " sentiment, keywords, analyzer) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        c.user_id,
                        c.item_id,
                        c.text,
                        c.text_hash,
                        c.timestamp,
                        a.language,
                        float(a.sentiment),
                        json.dumps([[k, float(w)] for k, w in a.keywords], ensure_ascii=False),
                        analyzer,
                    ),
                )
                if cur.rowcount:
                    added.append(c)
        return added

    def _rows(self, select: str, user_id: str | None) -> list[tuple[Any, ...]]:
        """Rows of ``select`` for one user (or all), oldest first."""
        args: tuple[Any, ...] = () if user_id is None else (user_id,)
        where = "" if user_id is None else " WHERE user_id=?"
        with self._lock:
            return self._conn.execute(select + where + " ORDER BY timestamp, id", args).fetchall()

    def events(self, user_id: str | None = None) -> list[EventRecord]:
        """A user's events (or all), oldest first."""
        rows = self._rows("SELECT user_id, item_id, event, value, timestamp FROM events", user_id)
        return [EventRecord(*r) for r in rows]

    def comments(self, user_id: str | None = None) -> list[StoredComment]:
        rows = self._rows(
            "SELECT user_id, item_id, text, timestamp, language, sentiment, keywords FROM comments", user_id
        )
        return [
            StoredComment(
                record=CommentRecord(u, i, t, ts),
                language=lang,
                sentiment=s,
                keywords=[(str(k), float(w)) for k, w in json.loads(kw or "[]")],
            )
            for u, i, t, ts, lang, s, kw in rows
        ]

    def users(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT user_id FROM events UNION SELECT user_id FROM comments UNION SELECT user_id FROM profiles"
            ).fetchall()
        return sorted(r[0] for r in rows)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("events", "comments", "profiles", "served")
            }

    def iter_events(self, batch: int = 10000) -> Iterator[EventRecord]:
        """All events in insertion order without holding them all (for building interaction matrices)."""
        last = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT id, user_id, item_id, event, value, timestamp FROM events WHERE id>? ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            for r in rows:
                yield EventRecord(*r[1:])

    def count_for_user(self, user_id: str) -> int:
        """Events + comments stored for a user: a profile folded from fewer rows is stale."""
        with self._lock:
            return int(
                self._conn.execute(
                    "SELECT (SELECT COUNT(*) FROM events WHERE user_id=?) + (SELECT COUNT(*) FROM comments WHERE user_id=?)",
                    (user_id, user_id),
                ).fetchone()[0]
            )

    @staticmethod
    def counts_by_user(conn: sqlite3.Connection) -> dict[str, int]:
        """:meth:`count_for_user` for every user at once, on any connection to the file (``mmrec check``
        reads it read-only): what each stored profile's ``n_events`` may be at most."""
        rows = conn.execute(
            "SELECT user_id, SUM(n) FROM (SELECT user_id, COUNT(*) AS n FROM events GROUP BY user_id "
            "UNION ALL SELECT user_id, COUNT(*) FROM comments GROUP BY user_id) GROUP BY user_id"
        ).fetchall()
        return {str(user): int(n) for user, n in rows}

    def popular_items(self, limit: int = 200) -> list[tuple[str, int]]:
        """Items by number of distinct users with a positive signal (like, share, comment, view, rating >= 4)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, COUNT(DISTINCT user_id) AS n FROM events WHERE event IN ('like','share','comment','view')"
                " OR (event='rating' AND value>=4) GROUP BY item_id ORDER BY n DESC, item_id LIMIT ?",
                (limit,),
            ).fetchall()
        return [(str(i), int(n)) for i, n in rows]

    # --- served lists: what the recommender showed, so skips can count ---
    def record_served(self, user_id: str, item_ids: Sequence[str], ts: float) -> None:
        """Remember that ``item_ids`` were shown to ``user_id`` as one list at ``ts`` (idempotent)."""
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO served (user_id, item_id, ts) VALUES (?,?,?)",
                [(user_id, str(i), float(ts)) for i in item_ids],
            )

    def served(
        self, user_id: str, since: float | None = None, as_of: float | None = None, settle_s: float = 0.0
    ) -> dict[str, ServedStat]:
        """Per item served to ``user_id`` (at or after ``since``): counts of servings, skips, engagements.

        An unanswered serving counts as ignored once the user moved on: a later list was served, or
        (with ``as_of``, the time of a new request) the user is asking again. Either must come more
        than ``settle_s`` after the serving, so a reload right away does not skip the whole list.
        """
        lo = float("-inf") if since is None else float(since)
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT item_id, ts FROM served WHERE user_id=? AND ts>=? ORDER BY ts, id", (user_id, lo)
                ).fetchall()
            except sqlite3.OperationalError:  # a database no writer of this version has opened yet
                return {}
            if not rows:
                return {}
            responses = self._conn.execute(
                "SELECT item_id, event, timestamp FROM events WHERE user_id=? AND timestamp>=? AND item_id IN"
                " (SELECT item_id FROM served WHERE user_id=? AND ts>=?) ORDER BY timestamp",
                (user_id, rows[0][1], user_id, lo),
            ).fetchall()
        moved_on = max(max(float(ts) for _, ts in rows), float("-inf") if as_of is None else float(as_of))
        by_item: dict[str, list[float]] = {}
        for item, ts in rows:
            by_item.setdefault(str(item), []).append(float(ts))
        answers: dict[str, list[tuple[float, bool]]] = {}
        for item, event, ts in responses:
            answers.setdefault(str(item), []).append((float(ts), event in NEGATIVE_EVENTS))
        out: dict[str, ServedStat] = {}
        for item, times in by_item.items():
            skipped = engaged = 0
            for n, ts in enumerate(times):
                end = times[n + 1] if n + 1 < len(times) else float("inf")
                window = [neg for t, neg in answers.get(item, []) if ts <= t < end]
                if any(window):
                    skipped += 1
                elif window:
                    engaged += 1
                elif moved_on - ts > settle_s:  # a later list was asked for and this item was passed over
                    skipped += 1
            out[item] = ServedStat(len(times), times[-1], skipped, engaged)
        return out

    def served_rows(self, user_id: str) -> list[tuple[str, float]]:
        """Every (item_id, ts) served to ``user_id``, oldest first (for a user's data export)."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT item_id, ts FROM served WHERE user_id=? ORDER BY ts, id", (user_id,)
                ).fetchall()
            except sqlite3.OperationalError:
                return []
        return [(str(i), float(t)) for i, t in rows]

    # --- erasure (mmrec.privacy): one user's rows out, then no copy left in the file or its WAL ---
    def delete_user(self, user_id: str) -> dict[str, int]:
        """Delete every row of ``user_id`` in one transaction; rows removed per table.

        ``secure_delete`` is switched on for this connection first, so SQLite overwrites the deleted
        cells and freed pages with zeros instead of leaving the text in the file.
        """
        removed: dict[str, int] = {}
        with self._lock:
            self._conn.execute("PRAGMA secure_delete=ON")
            with self._conn:
                for table in ("events", "comments", "served", "profiles"):
                    cur = self._conn.execute(f"DELETE FROM {table} WHERE user_id=?", (user_id,))
                    removed[table] = max(int(cur.rowcount), 0)
                # No user id here: only that a forget happened, so other processes drop fitted models.
                self._conn.execute("INSERT INTO erasures (at) VALUES (?)", (time.time(),))
        return removed

    def erasures(self) -> int:
        """How many forgets this store has seen: a model fitted before the count moved may hold a
        forgotten user (long-lived readers compare it on refresh)."""
        with self._lock:
            try:
                return int(self._conn.execute("SELECT COUNT(*) FROM erasures").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    # --- refits (feedback, issue 11): `mmrec refit` asks every long-lived reader to fit again ---
    def record_refit(self) -> int:
        """Note that the collaborative model was refitted on demand (no user id, only the time), so
        other processes' Libraries fit theirs again on their next read; returns the new count."""
        with self._lock, self._conn:
            self._conn.execute("INSERT INTO refits (at) VALUES (?)", (time.time(),))
            return int(self._conn.execute("SELECT COUNT(*) FROM refits").fetchone()[0])

    def refits(self) -> int:
        """How many on-demand refits were recorded (long-lived readers compare it on refresh)."""
        with self._lock:
            try:
                return int(self._conn.execute("SELECT COUNT(*) FROM refits").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    def scrub(self, attempts: int = 50, wait_s: float = 0.1) -> dict[str, object]:
        """Leave no deleted byte behind: VACUUM (rewrites every page from live rows only, so stale cell
        copies that page splits left in free space go too; its scratch copy stays in memory), then
        ``wal_checkpoint(TRUNCATE)`` so the WAL, which still holds the old pages, is emptied.

        The checkpoint waits for other connections' readers; ``wal_truncated`` says whether it got there.
        """
        with self._lock:
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self._conn.execute("VACUUM")
            busy = 1
            for _ in range(attempts):
                busy = int(self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
                if not busy:
                    break
                threading.Event().wait(wait_s)
            free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
        wal = self.path.with_name(self.path.name + "-wal")
        return {
            "file": self.path.name,
            "secure_delete": True,
            "vacuumed": True,
            "wal_truncated": not busy,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "free_pages": free,
        }

    # Profiles are stored here too (one database per library); mmrec.profiles owns their encoding.
    def put_profile_blob(self, user_id: str, data: bytes, updated: float) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO profiles (user_id, data, updated) VALUES (?,?,?) "
                "ON CONFLICT(user_id) DO UPDATE SET data=excluded.data, updated=excluded.updated",
                (user_id, data, updated),
            )

    def put_profile_blobs(self, rows: Iterable[tuple[str, bytes, float]]) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT INTO profiles (user_id, data, updated) VALUES (?,?,?) "
                "ON CONFLICT(user_id) DO UPDATE SET data=excluded.data, updated=excluded.updated",
                list(rows),
            )

    def get_profile_blob(self, user_id: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM profiles WHERE user_id=?", (user_id,)).fetchone()
        return None if row is None else bytes(row[0])
