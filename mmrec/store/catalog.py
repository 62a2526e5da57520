"""The SQLite catalog: schema, per-thread connections in WAL mode, and row <-> record conversion."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from mmrec.errors import LibraryError
from mmrec.store.manifest import dumps
from mmrec.store.records import ItemRecord

SCHEMA_VERSION = 1
SQL_CHUNK = 900  # stay under SQLite's host-parameter limit on old builds

# Added after schema 1 shipped. Additive, so the schema version stays 1 and older mmrec versions
# still open the library: writers create it when missing (``ensure_thumbnails``, under the writer
# lock); readers never do, and read a missing table as "no thumbnails".
THUMBNAILS_DDL = """CREATE TABLE IF NOT EXISTS thumbnails (
    key INTEGER PRIMARY KEY,
    mime TEXT NOT NULL,
    data BLOB NOT NULL,
    created REAL NOT NULL
)"""

# Also additive (see THUMBNAILS_DDL): the media folders an encode has read, each with the label and
# id prefix its items get, so two folders never hand out the same item id (``LibraryStore.register_source``).
# A library made before it has no rows; its items keep the ids they were stored under.
SOURCES_DDL = """CREATE TABLE IF NOT EXISTS sources (
    root TEXT PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created REAL NOT NULL
)"""

# Also additive: full-text search over each ok item's own words (``mmrec.store.lexical``), one column
# per field so that matched words can be reported per field. Rows are kept in step with ``items`` by
# the same transactions; the text is pre-segmented (jieba for Chinese) and FTS5 lower-cases and
# Porter-stems it. Derived data: ``mmrec check --repair`` rebuilds it.
LEXICAL_TABLE = "items_fts"
LEXICAL_DDL = f"""CREATE VIRTUAL TABLE IF NOT EXISTS {LEXICAL_TABLE} USING fts5(
    title, description, tags, transcript, vtags,
    tokenize = 'porter unicode61 remove_diacritics 2'
)"""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    path TEXT,
    kind TEXT NOT NULL,
    content_hash TEXT,
    size INTEGER,
    mtime REAL,
    duration_s REAL,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'ok',
    error TEXT,
    fusion_version TEXT,
    weights TEXT NOT NULL DEFAULT '{}',
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_path ON items(path);
CREATE INDEX IF NOT EXISTS items_seq ON items(seq);
CREATE INDEX IF NOT EXISTS items_kind_status ON items(kind, status);
CREATE TABLE IF NOT EXISTS slots (
    key INTEGER NOT NULL,
    modality TEXT NOT NULL,
    row_start INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    PRIMARY KEY (modality, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS slots_key ON slots(key);
CREATE TABLE IF NOT EXISTS deletions (
    key INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deletions_seq ON deletions(seq);
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    size INTEGER,
    mtime REAL,
    content_hash TEXT,
    time REAL NOT NULL
);
"""
    + THUMBNAILS_DDL
    + ";"
    + SOURCES_DDL
    + ";"
    + LEXICAL_DDL
    + ";"
)

ITEM_COLUMNS = "key, item_id, path, kind, content_hash, size, mtime, duration_s, title, description, tags, metadata, status, error"


class Connections:
    """One sqlite3 connection per thread: WAL lets many threads read while one writes."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise LibraryError(str(self.db_path.parent), "the library store was closed")
        conn = connect(self.db_path)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def connect(db_path: Path) -> sqlite3.Connection:
    """Autocommit connection (we issue BEGIN ourselves); NORMAL sync is safe in WAL because vectors are fsynced first."""
    try:
        conn = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
    except sqlite3.DatabaseError as exc:
        raise LibraryError(str(db_path), f"cannot open the catalog ({exc})") from exc
    return conn


def initialise(conn: sqlite3.Connection, db_path: Path, created: float) -> None:
    """Create the schema (idempotent) or refuse a catalog we cannot read."""
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LibraryError(str(db_path), f"could not switch the catalog to WAL mode (got {mode})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise LibraryError(str(db_path), "this SQLite file is not an mmrec catalog (no meta table)")
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            if row is None:
                raise LibraryError(
                    str(db_path), "the catalog has no schema version; it is not an mmrec catalog"
                )
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise LibraryError(
                    str(db_path),
                    f"written by a newer mmrec (catalog schema {version}, this version reads up to "
                    f"{SCHEMA_VERSION}); upgrade mmrec to open it",
                )
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(
                "INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', ?), ('seq', '0'), ('created', ?)",
                (str(SCHEMA_VERSION), repr(created)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise LibraryError(str(db_path), f"not a readable SQLite catalog ({exc})") from exc


def ensure_thumbnails(conn: sqlite3.Connection) -> None:
    """Create the thumbnails table of a library made before it existed (writers only, in their transaction)."""
    conn.execute(THUMBNAILS_DDL)


def ensure_sources(conn: sqlite3.Connection) -> None:
    """Create the sources table of a library made before it existed (writers only, in their transaction)."""
    conn.execute(SOURCES_DDL)


def is_missing_table(exc: sqlite3.OperationalError, table: str) -> bool:
    """Whether ``exc`` says ``table`` does not exist (an older library a reader must not migrate)."""
    return f"no such table: {table}" in str(exc)


def get_meta(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
        (name, value),
    )


def record_from_row(row: Sequence) -> ItemRecord:
    """Rebuild an ItemRecord from a row selected with ITEM_COLUMNS."""
    return ItemRecord(
        key=int(row[0]),
        item_id=row[1],
        path=row[2],
        kind=row[3],
        content_hash=row[4],
        size=row[5],
        mtime=row[6],
        duration_s=row[7],
        title=row[8],
        description=row[9],
        tags=json.loads(row[10]),
        metadata=json.loads(row[11]),
        status=row[12],
        error=row[13],
    )


def record_values(rec: ItemRecord) -> tuple:
    """The columns a commit writes (in the order of the upsert statement)."""
    return (
        rec.item_id,
        rec.path,
        rec.kind,
        rec.content_hash,
        None if rec.size is None else int(rec.size),
        None if rec.mtime is None else float(rec.mtime),
        None if rec.duration_s is None else float(rec.duration_s),
        rec.title or "",
        rec.description or "",
        dumps(list(rec.tags)),
        dumps(rec.metadata),
        rec.status,
        rec.error,
    )


def chunks(values: Sequence[int], size: int = SQL_CHUNK) -> Iterator[list[int]]:
    """Split a key list for ``IN (...)`` queries."""
    for i in range(0, len(values), size):
        yield [int(v) for v in values[i : i + size]]
