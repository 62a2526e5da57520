"""LibraryStore: the library folder (catalog + vector files + manifest) behind one small API.

Write path: vectors are appended and fsynced first, then one SQLite transaction points the
catalog at them, so a kill at any moment leaves the old or the new item, never half of one.
Many threads (and processes) may read while one writer commits; writers are serialised by a
thread lock plus an ``flock`` on ``.write.lock`` so two encode jobs cannot interleave appends.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrec.errors import (
    InvalidInputError,
    ItemNotFoundError,
    LibraryError,
    LibraryNotFoundError,
    ModelMismatchError,
)
from mmrec.store import catalog as cat
from mmrec.store import lexical
from mmrec.store.manifest import dumps, fsync_dir, read_json, write_error, write_json_atomic
from mmrec.store.records import (
    FUSED,
    EncodedItem,
    ItemRecord,
    as_fused,
    as_rows,
    check_record,
    check_thumbnail,
    check_weights,
)
from mmrec.store.vectors import VectorFile, rewrite_live_rows

CATALOG = "catalog.sqlite"
MANIFEST = "manifest.json"
LOCKFILE = ".write.lock"
RUN_LOCKFILE = ".run.lock"  # held for a whole encode: one long writer at a time (see ``exclusive_run``)
_PENDING = "compact_pending:"
_ROWS = "rows:"  # high-water mark of the rows the catalog has ever assigned in a vector file
META_FUSION = "fusion_version"  # the fusion every ok item's fused vector comes from (source of truth)
META_MANIFEST = "manifest"  # a copy of manifest.json, so `mmrec check --repair` can restore it
CHECK_HINT = "run `mmrec check --library {path}` (add --repair to rebuild what can be derived)"
_MODEL_IDENTITY = ("modality", "model", "dim", "version")


class LibraryBusyError(LibraryError):
    """Another process holds the library for a long write (an encode) that must not run twice at once."""

    def __init__(self, path: str, operation: str, holder: dict) -> None:
        self.operation = operation
        self.holder_pid = holder.get("pid")
        self.holder_operation = str(holder.get("operation") or "mmrec encode")
        since = holder.get("since")
        when = time.strftime(", since %H:%M:%S", time.localtime(float(since))) if since else ""
        pid = f"pid {self.holder_pid}" if self.holder_pid else "pid unknown"
        super().__init__(
            path,
            f"another {self.holder_operation} is writing to this library ({pid}{when}); wait for it to "
            f"finish, or run {operation} with --wait to queue behind it",
        )


class LexicalIndexMissingError(LibraryError):
    """The library was made before full-text search existed; a reader never builds the table."""

    def __init__(self, path: str) -> None:
        super().__init__(
            path,
            "this library has no full-text index yet (it was made by an older mmrec); build it with "
            f"`mmrec check --library {path} --repair` (or any `mmrec encode` into it), or search with "
            "--mode dense",
        )


@dataclass(frozen=True)
class Source:
    """A media folder an encode has read: its items' ids are ``prefix + path relative to root``.

    ``label`` is short, unique in the library and never changes; ``prefix`` is ``""`` for the first
    folder (and for every library made before sources were recorded) and ``label + ":"`` after it.
    """

    root: str
    label: str
    prefix: str

    def qualified(self, rel: str) -> str:
        """The id with this folder's label, unique across folders even when ``prefix`` is empty."""
        return f"{self.label}:{rel}"


class LibraryStore:
    """A library folder; open with :meth:`open`. Safe for many reader threads and one writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vectors_dir = path / "vectors"
        self._conns = cat.Connections(path / CATALOG)
        self._wlock = threading.Lock()
        self._lock_fd: int | None = None
        self._files: dict[str, VectorFile] = {}
        self._files_lock = threading.Lock()

    # ================================================================== opening
    @classmethod
    def open(cls, path: str | Path, create: bool = True, damaged_ok: bool = False) -> LibraryStore:
        """Open (or create) a library; refuses folders that are not libraries or come from a newer mmrec.

        A library whose ``manifest.json`` is missing is refused (recreating it would drop the model
        guard); ``damaged_ok`` is for ``mmrec check``, which reports and repairs it.
        """
        root = Path(path).expanduser().absolute()
        if not root.exists():
            if not create:
                raise LibraryNotFoundError(str(root))
            root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            raise LibraryError(str(root), "is a file, not a library folder")
        db = root / CATALOG
        if not db.exists():
            others = [p.name for p in root.iterdir()]
            if others:
                shown = ", ".join(sorted(others)[:5])
                raise LibraryError(
                    str(root),
                    f"not an mmrec library (no {CATALOG}, but it holds other files: {shown}); "
                    "choose a new or empty folder for --library",
                )
            if not create:
                raise LibraryNotFoundError(str(root))
        store = cls(root)
        try:
            store._setup(damaged_ok)
        except BaseException:
            store.close()
            raise
        return store

    def _setup(self, damaged_ok: bool = False) -> None:
        now = time.time()
        cat.initialise(self._conns.get(), self.path / CATALOG, now)
        if not (self.path / MANIFEST).exists() and not damaged_ok and self._holds_data():
            raise LibraryError(
                str(self.path / MANIFEST),
                "missing: the library holds items but its manifest (models, fusion version) is gone; "
                + CHECK_HINT.format(path=self.path),
            )
        for sub in ("vectors", "fusion", "index"):
            (self.path / sub).mkdir(exist_ok=True)
        self._lock_fd = os.open(self.path / LOCKFILE, os.O_RDWR | os.O_CREAT, 0o644)
        needs_repair = self._db.execute("SELECT 1 FROM meta WHERE name LIKE ?", (_PENDING + "%",)).fetchone()
        if (
            (self.path / MANIFEST).exists()
            and not needs_repair
            and not list(self.vectors_dir.glob("*.compact"))
        ):
            return  # plain readers never wait for a writer's lock
        with self._writing():
            if not (self.path / MANIFEST).exists() and not self._holds_data():  # a new library
                write_json_atomic(
                    self.path / MANIFEST,
                    {"schema_version": cat.SCHEMA_VERSION, "models": {}, "created": now, "updated": now},
                )
            self._finish_compaction()

    def _holds_data(self) -> bool:
        """Whether anything was ever committed (a new library's manifest may be created, no other)."""
        return int(cat.get_meta(self._db, "seq") or 0) > 0 or bool(
            self._db.execute("SELECT 1 FROM items LIMIT 1").fetchone()
        )

    def close(self) -> None:
        """Close every thread's catalog connection and the lock file."""
        self._conns.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> LibraryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ================================================================== plumbing
    @property
    def _db(self) -> sqlite3.Connection:
        return self._conns.get()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """Exclusive writer: thread lock, then a process-wide flock."""
        if self._lock_fd is None:
            raise LibraryError(str(self.path), "the library store was closed")
        with self._wlock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield self._db
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the library's writer lock (thread lock + ``flock`` on ``.write.lock``) for a block.

        Files that live beside the catalog (the FAISS index) are saved under it, so two processes
        never save at once and cleanup never removes another writer's temporary files.
        """
        with self._writing():
            yield

    @contextlib.contextmanager
    def exclusive_run(self, operation: str, wait: bool = False) -> Iterator[None]:
        """Hold the library for a whole long write, so a second encode is refused (or queued) up front.

        The per-commit writer lock keeps commits whole but lets two encodes plan the same files and
        both encode every one. This ``flock`` on ``.run.lock`` is held from planning to the last
        commit; the holder writes its pid there so the refused process can name it. The kernel drops
        the lock when the holder dies, so a killed encode never leaves a stale lock behind.
        """
        fd = os.open(self.path / RUN_LOCKFILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise LibraryBusyError(str(self.path), operation, _read_holder(fd)) from None
            os.ftruncate(fd, 0)
            os.pwrite(
                fd, json.dumps({"pid": os.getpid(), "operation": operation, "since": time.time()}).encode(), 0
            )
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ================================================================== sources (item identity)
    def sources(self) -> list[Source]:
        """Registered media folders, oldest first ([] for a library made before they were recorded)."""
        try:
            rows = self._db.execute(
                "SELECT root, label, prefix FROM sources ORDER BY created, root"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if cat.is_missing_table(exc, "sources"):
                return []  # a reader never adds the table
            raise
        return [Source(str(r), str(lb), str(p)) for r, lb, p in rows]

    def register_source(self, root: str | Path, commit: bool = True) -> Source:
        """The source for a media folder, registering it on first use (a writer; one transaction).

        The first folder of a library gets the empty prefix, so a one-folder library has plain
        relative-path ids (and a library made before sources existed keeps its ids); each later
        folder gets ``label:``, where the label is its folder name made unique in the library.
        ``commit=False`` only says what registering would give, and writes nothing.
        """
        root_s = str(root)
        known = {s.root: s for s in self.sources()}
        if root_s in known or not commit:
            return known.get(root_s) or _new_source(root_s, list(known.values()))
        with self._writing() as conn, self._transaction(conn):
            cat.ensure_sources(conn)
            rows = conn.execute("SELECT root, label, prefix FROM sources").fetchall()
            current = [Source(str(r), str(lb), str(p)) for r, lb, p in rows]
            found = next((s for s in current if s.root == root_s), None)
            if found is not None:
                return found
            source = _new_source(root_s, current)
            conn.execute(
                "INSERT INTO sources(root, label, prefix, created) VALUES (?, ?, ?, ?)",
                (source.root, source.label, source.prefix, time.time()),
            )
            return source

    def identities(self) -> tuple[dict[str, str], dict[str, str | None]]:
        """(path -> item id, item id -> path) over every stored item: what id assignment checks against.

        A path held by several items (a library written before aliases were detected) maps to the
        most recently updated one, as :meth:`find_by_path` does.
        """
        by_path: dict[str, str] = {}
        by_id: dict[str, str | None] = {}
        for item_id, path in self._db.execute("SELECT item_id, path FROM items ORDER BY updated, key"):
            by_id[str(item_id)] = path
            if path is not None:
                by_path[str(path)] = str(item_id)
        return by_path, by_id

    def seq(self) -> int:
        """The store's change sequence: one cheap read that tells a reader whether anything moved."""
        return int(cat.get_meta(self._db, "seq") or 0)

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: IMMEDIATE for writes, DEFERRED for a consistent multi-statement read."""
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _is_write_failure(exc):
                raise LibraryError(
                    str(self.path / CATALOG),
                    f"cannot write ({exc}); the transaction was rolled back: free space and run the command again",
                ) from exc
            raise

    def _file(self, modality: str) -> VectorFile | None:
        """The vector file of a modality (it may have been created by another process since we opened)."""
        vf = self._files.get(modality)
        if vf is None:
            found = VectorFile.open(self.vectors_dir, modality)
            if found is None:
                return None
            with self._files_lock:
                vf = self._files.setdefault(modality, found)
        return vf

    def _file_for_write(self, modality: str, dim: int, source: str) -> VectorFile:
        vf = self._file(modality)
        if vf is None:
            vf = VectorFile.create(self.vectors_dir, modality, dim)
            with self._files_lock:
                self._files[modality] = vf
        elif vf.dim != dim:
            raise InvalidInputError(
                source,
                f"vectors[{modality}]" if modality != FUSED else "fused",
                f"dimension {dim} differs from the library's {modality} dimension {vf.dim} "
                "(another model?); encode into a new --library or re-encode everything",
            )
        return vf

    def _modalities(self) -> list[str]:
        return sorted(p.stem for p in self.vectors_dir.glob("*.json"))

    # ================================================================== manifest
    def manifest(self) -> dict:
        """The parsed manifest.json (models, fusion version, index spec, timestamps)."""
        path = self.path / MANIFEST
        if not path.exists():
            raise LibraryError(str(path), "missing; " + CHECK_HINT.format(path=self.path))
        try:
            return read_json(path)
        except LibraryError as exc:
            raise LibraryError(str(path), f"{exc.reason}; " + CHECK_HINT.format(path=self.path)) from exc

    def update_manifest(self, **fields: object) -> None:
        """Merge top-level fields into manifest.json and rewrite it atomically."""
        with self._writing():
            data = self.manifest()
            data.update(fields)
            self._write_manifest(data)

    def _write_manifest(self, data: dict) -> None:
        """Under the writer lock: the catalog's copy first, then the file (both atomic)."""
        data["updated"] = time.time()
        conn = self._db
        with self._transaction(conn):
            cat.set_meta(conn, META_MANIFEST, dumps(data))
        write_json_atomic(self.path / MANIFEST, data)

    def manifest_copy(self) -> dict | None:
        """The catalog's copy of the manifest (written with it), or None for a library made before it."""
        raw = cat.get_meta(self._db, META_MANIFEST)
        return None if raw is None else dict(json.loads(raw))

    def fusion_version(self) -> str | None:
        """The fusion version every ok item was fused with: the catalog's record (committed in the same
        transaction as the fused vectors), else what the manifest of an older library names."""
        found = cat.get_meta(self._db, META_FUSION)
        if found:
            return found
        manifest = self.manifest()
        value = manifest.get("fusion_version", manifest.get("fusion"))
        if isinstance(value, dict):
            value = value.get("version")
        return str(value) if value else None

    def check_models(self, models: dict[str, dict]) -> None:
        """Record the models on first use; refuse to mix vectors of a different model for a role."""
        with self._writing():
            data = self.manifest()
            known: dict = data.get("models") or {}
            changed = False
            for role, info in models.items():
                if info is None:
                    continue
                if not isinstance(info, dict):
                    raise InvalidInputError("models", role, "must be an EncoderInfo dict")
                old = known.get(role)
                if old is None:
                    known[role] = dict(info)
                    changed = True
                    continue
                if tuple(old.get(k) for k in _MODEL_IDENTITY) != tuple(info.get(k) for k in _MODEL_IDENTITY):
                    raise ModelMismatchError(role, _describe_model(old), _describe_model(info))
            if changed:
                data["models"] = known
                self._write_manifest(data)

    # ================================================================== writing
    def commit_items(self, items: list[EncodedItem], fusion_version: str) -> list[int]:
        """Store items (replacing earlier versions of the same item_id, whose key is kept); returns keys."""
        if not items:
            return []
        prepared = [_prepare(it) for it in items]
        dims: dict[str, int] = {}
        for rec, rows, fused, _, _ in prepared:
            for m, arr in [*rows.items(), *([(FUSED, fused)] if fused is not None else [])]:
                if dims.setdefault(m, arr.shape[1]) != arr.shape[1]:
                    raise InvalidInputError(
                        rec.item_id, m, f"dimension {arr.shape[1]} differs from {dims[m]} in the same batch"
                    )
        blocks: dict[str, tuple[np.ndarray, list[int]]] = {}
        for m in dims:
            parts, owners = [], []
            for i, (_, rows, fused, _, _) in enumerate(prepared):
                arr = fused if m == FUSED else rows.get(m)
                if arr is not None:
                    parts.append(arr)
                    owners.append(i)
            block = np.concatenate(parts) if len(parts) > 1 else parts[0]
            if not np.isfinite(block).all():
                bad = next(i for i, a in zip(owners, parts, strict=True) if not np.isfinite(a).all())
                field = "fused" if m == FUSED else f"vectors[{m}]"
                raise InvalidInputError(prepared[bad][0].item_id, field, "contains NaN or infinity")
            blocks[m] = (block, owners)
        with self._writing() as conn:
            current = cat.get_meta(conn, META_FUSION)
            if FUSED in blocks and current is not None and current != fusion_version:
                raise LibraryError(
                    str(self.path),
                    f"these items were fused with {fusion_version!r} but the library's fusion is now "
                    f"{current!r} (train-fusion finished meanwhile); run the encode again",
                )
            for m, (_, owners) in blocks.items():  # refuse a dimension change before appending anything
                vf = self._file(m)
                if vf is not None and vf.dim != dims[m]:
                    self._file_for_write(m, dims[m], prepared[owners[0]][0].item_id)
            assigned = {m: self._check_rows(conn, m) for m in blocks}  # refuse damage before appending
            placed: list[dict[str, tuple[int, int]]] = [{} for _ in prepared]
            for m, (block, owners) in blocks.items():
                vf = self._file_for_write(m, dims[m], prepared[owners[0]][0].item_id)
                start = vf.append(block)
                assigned[m] = max(assigned[m], start + len(block))
                for i in owners:
                    n = prepared[i][2].shape[0] if m == FUSED else prepared[i][1][m].shape[0]
                    placed[i][m] = (start, n)
                    start += n
            now = time.time()
            with self._transaction(conn):
                seq = int(cat.get_meta(conn, "seq") or 0)
                rows_out = []
                for rec, _, _, weights, _ in prepared:
                    seq += 1
                    rows_out.append((*cat.record_values(rec), fusion_version, dumps(weights), seq, now, now))
                ids = [rec.item_id for rec, _, _, _, _ in prepared]
                replaced = self._keys_for_ids(conn, ids)
                conn.executemany(_UPSERT, rows_out)  # in order: a later duplicate id wins
                conn.executemany("DELETE FROM slots WHERE key=?", [(k,) for k in replaced.values()])
                by_id = self._keys_for_ids(conn, ids) if len(replaced) < len(set(ids)) else replaced
                keys = [by_id[item_id] for item_id in ids]
                last = {item_id: i for i, item_id in enumerate(ids)}
                conn.executemany(
                    "INSERT INTO slots(key, modality, row_start, n_rows) VALUES (?, ?, ?, ?)",
                    [(keys[i], m, s, n) for i in last.values() for m, (s, n) in placed[i].items()],
                )
                if conn.execute("SELECT 1 FROM failures LIMIT 1").fetchone():
                    conn.executemany(
                        "DELETE FROM failures WHERE path=?",
                        [(rec.path,) for rec, _, _, _, _ in prepared if rec.path],
                    )
                self._write_item_thumbnails(conn, [(keys[i], prepared[i][4]) for i in last.values()], now)
                lexical.sync_keys(conn, keys)  # the items' words, in this same transaction
                for m, end in assigned.items():
                    cat.set_meta(conn, _ROWS + m, str(end))
                cat.set_meta(conn, "seq", str(seq))
        for item, key in zip(items, keys, strict=True):
            item.record.key = key
        return keys

    def _write_item_thumbnails(
        self, conn: sqlite3.Connection, rows: list[tuple[int, tuple[bytes, str] | None]], now: float
    ) -> None:
        """Inside a commit: store each item's new thumbnail, and drop an old one it no longer has
        (a replaced item's picture would show the previous content)."""
        cat.ensure_thumbnails(conn)
        conn.executemany(
            "INSERT INTO thumbnails(key, mime, data, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET mime=excluded.mime, data=excluded.data, created=excluded.created",
            [(k, thumb[1], thumb[0], now) for k, thumb in rows if thumb is not None],
        )
        conn.executemany("DELETE FROM thumbnails WHERE key=?", [(k,) for k, thumb in rows if thumb is None])

    def put_thumbnails(self, rows: Sequence[tuple[int, bytes, str]], replace: bool = True) -> int:
        """Store (key, image bytes, MIME type) thumbnails for existing ok items in one transaction.

        Rows for keys that are gone or failed are skipped (an item deleted meanwhile gets no
        orphan picture); ``replace=False`` keeps a thumbnail that is already there (one an encode
        committed while a backfill was decoding). Returns how many rows were written.
        """
        clean = [(int(k), *check_thumbnail(f"key {k}", (data, mime))) for k, data, mime in rows]
        if not clean:
            return 0
        conflict = "DO UPDATE SET mime=excluded.mime, data=excluded.data, created=excluded.created"
        sql = (
            "INSERT INTO thumbnails(key, mime, data, created) SELECT ?, ?, ?, ? "
            "WHERE EXISTS (SELECT 1 FROM items WHERE key=? AND status='ok') "
            f"ON CONFLICT(key) {conflict if replace else 'DO NOTHING'}"
        )
        now = time.time()
        written = 0
        with self._writing() as conn, self._transaction(conn):
            cat.ensure_thumbnails(conn)
            for key, data, mime in clean:
                written += conn.execute(sql, (key, mime, data, now, key)).rowcount
        return written

    def set_fused(
        self, keys: Sequence[int], fused: np.ndarray, weights: list[dict[str, float]], fusion_version: str
    ) -> None:
        """Re-fuse without re-encoding: new fused rows, weights and version for existing keys.

        A new fused dimension (another fusion checkpoint) rewrites ``fused.f32`` and so must cover
        every item that has a fused vector, in one call.
        """
        keys = [int(k) for k in keys]
        if len(set(keys)) != len(keys):
            raise InvalidInputError("set_fused", "keys", "contains duplicates")
        arr = np.ascontiguousarray(np.asarray(fused, dtype=np.float32))
        if arr.ndim != 2 or arr.shape[0] != len(keys):
            raise InvalidInputError("set_fused", "fused", f"expected shape ({len(keys)}, D), got {arr.shape}")
        if len(weights) != len(keys):
            raise InvalidInputError("set_fused", "weights", f"expected {len(keys)} dicts, got {len(weights)}")
        if not np.isfinite(arr).all():
            raise InvalidInputError("set_fused", "fused", "contains NaN or infinity")
        clean = [check_weights(f"key {k}", w) for k, w in zip(keys, weights, strict=True)]
        if not keys:
            return
        with self._writing() as conn:
            existing = self._existing_keys(conn, keys)
            missing = [k for k in keys if k not in existing]
            if missing:
                raise ItemNotFoundError(f"#{missing[0]}")
            current = self._file(FUSED)
            if current is not None and current.dim != arr.shape[1]:
                self._rewrite_fused_new_dim(conn, current, keys, arr, clean, fusion_version)
                return
            assigned = self._check_rows(conn, FUSED)
            vf = self._file_for_write(FUSED, arr.shape[1], "set_fused")
            start = vf.append(arr)
            with self._transaction(conn):
                self._write_fused_rows(conn, keys, start, clean, fusion_version)
                cat.set_meta(conn, _ROWS + FUSED, str(max(assigned, start + len(keys))))

    def _check_rows(self, conn: sqlite3.Connection, modality: str) -> int:
        """Refuse to append to a vector file that holds fewer rows than the catalog ever assigned
        (truncated, replaced or deleted): its next rows would be ones stored items point at.
        Returns the high-water mark."""
        raw = cat.get_meta(conn, _ROWS + modality)
        if raw is not None:
            need = int(raw)
        else:  # a library from before the mark: derive it once
            row = conn.execute(
                "SELECT MAX(row_start + n_rows) FROM slots WHERE modality=?", (modality,)
            ).fetchone()
            need = int(row[0] or 0)
        vf = self._file(modality)
        have = 0 if vf is None else vf.n_rows()
        if have < need:
            where = vf.path if vf is not None else self.vectors_dir / f"{modality}.json"
            raise LibraryError(
                str(where),
                f"holds {have} rows but the catalog assigns rows up to {need} (truncated, replaced or "
                "deleted); appending would overwrite stored items' rows; "
                + CHECK_HINT.format(path=self.path),
            )
        return need

    def replace_fusion(
        self,
        fusion_version: str,
        fuse: Callable[[list[int]], tuple[np.ndarray, list[dict[str, float]]]],
        write_checkpoint: Callable[[Path], object] | None = None,
        chunk: int = 4096,
    ) -> int:
        """Switch the whole library to another fusion in one commit; returns how many items were re-fused.

        Under the writer lock (no encode interleaves): write the checkpoint (``fusion/<version>.pt``),
        fuse every ok item (``fuse(keys) -> (fused rows, weights)``) into a new fused file beside the
        live one, then one catalog transaction points every item at its new row and records the
        version, the file is swapped in (recovered on the next open like a compaction), the manifest
        follows, and checkpoints nothing names any more are removed. A kill before the commit leaves
        the old fusion whole (the temp file and checkpoint are cleaned up later); after it, the new.
        """
        with self._writing() as conn:
            folder = self.path / "fusion"
            if write_checkpoint is not None:
                target = folder / f"{fusion_version}.pt"
                try:
                    write_checkpoint(target)
                except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError
                    for tmp_ckpt in folder.glob(f".{target.name}.tmp-{os.getpid()}"):
                        tmp_ckpt.unlink(missing_ok=True)
                    raise write_error(target, exc) from exc
            keys = [int(r[0]) for r in conn.execute("SELECT key FROM items WHERE status='ok' ORDER BY key")]
            tmp = self.vectors_dir / f"{FUSED}.f32.compact"
            try:
                dim, weights = self._fuse_into(tmp, keys, fuse, chunk)
            except BaseException as exc:
                tmp.unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise write_error(tmp, exc) from exc
                raise
            with self._transaction(conn):
                conn.execute("DELETE FROM slots WHERE modality=?", (FUSED,))
                self._write_fused_rows(conn, keys, 0, weights, fusion_version)
                cat.set_meta(conn, META_FUSION, fusion_version)
                cat.set_meta(conn, _PENDING + FUSED, json.dumps({"dim": dim}))
            self._swap_compacted(conn, FUSED, tmp, new_dim=dim)
            data = self.manifest()
            data["fusion_version"] = fusion_version
            self._write_manifest(data)
            self.clean_fusion_folder()
        return len(keys)

    def _fuse_into(
        self,
        tmp: Path,
        keys: list[int],
        fuse: Callable[[list[int]], tuple[np.ndarray, list[dict[str, float]]]],
        chunk: int,
    ) -> tuple[int, list[dict[str, float]]]:
        """Write every key's new fused row, in key order, into ``tmp`` (fsynced); (dim, weights)."""
        dim: int | None = None
        weights: list[dict[str, float]] = []
        with open(tmp, "wb") as fh:
            for i in range(0, len(keys), chunk):
                part = keys[i : i + chunk]
                arr, w = fuse(part)
                arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
                if arr.ndim != 2 or arr.shape[0] != len(part) or len(w) != len(part):
                    raise InvalidInputError(
                        "replace_fusion", "fused", f"shape {arr.shape} for {len(part)} keys"
                    )
                if dim is not None and arr.shape[1] != dim:
                    raise InvalidInputError("replace_fusion", "fused", "dimension changed between chunks")
                if not np.isfinite(arr).all():
                    raise InvalidInputError("replace_fusion", "fused", "contains NaN or infinity")
                dim = int(arr.shape[1])
                weights.extend(check_weights(f"key {k}", x) for k, x in zip(part, w, strict=True))
                fh.write(memoryview(arr).cast("B"))
            fh.flush()
            os.fsync(fh.fileno())
        if dim is None:
            vf = self._file(FUSED)
            dim = vf.dim if vf is not None else 1
        return dim, weights

    def clean_fusion_folder(self) -> list[str]:
        """Remove checkpoints the library does not use (a killed train-fusion's) and dead writers' temp
        files; returns the names removed. Call under the writer lock (``replace_fusion`` does)."""
        keep = f"{self.fusion_version() or ''}.pt"
        removed = []
        for entry in (self.path / "fusion").iterdir():
            name = entry.name
            stale_tmp = name.startswith(".") and ".tmp-" in name and not _alive(name.rsplit("-", 1)[-1])
            if (name.endswith(".pt") and name != keep) or stale_tmp:
                entry.unlink(missing_ok=True)
                removed.append(name)
        return removed

    def _write_fused_rows(
        self,
        conn: sqlite3.Connection,
        keys: list[int],
        start: int,
        weights: list[dict[str, float]],
        fusion_version: str,
    ) -> None:
        """Point keys at consecutive fused rows from ``start``; bump seq so indexes pick them up."""
        seq = int(cat.get_meta(conn, "seq") or 0)
        now = time.time()
        conn.executemany(
            "INSERT INTO slots(key, modality, row_start, n_rows) VALUES (?, ?, ?, 1) "
            "ON CONFLICT(modality, key) DO UPDATE SET row_start=excluded.row_start, n_rows=1",
            [(k, FUSED, start + i) for i, k in enumerate(keys)],
        )
        conn.executemany(
            "UPDATE items SET weights=?, fusion_version=?, seq=?, updated=? WHERE key=?",
            [
                (dumps(w), fusion_version, seq + 1 + i, now, k)
                for i, (k, w) in enumerate(zip(keys, weights, strict=True))
            ],
        )
        cat.set_meta(conn, "seq", str(seq + len(keys)))

    def _rewrite_fused_new_dim(
        self,
        conn: sqlite3.Connection,
        vf: VectorFile,
        keys: list[int],
        arr: np.ndarray,
        weights: list[dict[str, float]],
        fusion_version: str,
    ) -> None:
        """Replace the whole fused file with vectors of a new dimension (crash-safe like compact)."""
        have = {int(r[0]) for r in conn.execute("SELECT key FROM slots WHERE modality=?", (FUSED,))}
        left_out = have - set(keys)
        if left_out:
            raise InvalidInputError(
                "set_fused",
                "fused",
                f"dimension {arr.shape[1]} differs from the library's fused dimension {vf.dim}; a new "
                f"dimension must re-fuse every item in one call ({len(left_out)} items were left out)",
            )
        tmp = vf.path.with_name(vf.path.name + ".compact")
        with open(tmp, "wb") as fh:
            fh.write(arr.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        with self._transaction(conn):
            conn.execute("DELETE FROM slots WHERE modality=?", (FUSED,))
            self._write_fused_rows(conn, keys, 0, weights, fusion_version)
            cat.set_meta(conn, _PENDING + FUSED, json.dumps({"dim": int(arr.shape[1])}))
        self._swap_compacted(conn, FUSED, tmp, new_dim=int(arr.shape[1]))

    def mark_for_reencode(self, keys: Sequence[int]) -> int:
        """Forget the file state of items whose vectors were damaged, so the next ``mmrec encode`` of
        their folder encodes them again (their records and vectors stay until then)."""
        with self._writing() as conn, self._transaction(conn):
            n = 0
            for part in cat.chunks(list(keys)):
                n += conn.execute(
                    f"UPDATE items SET mtime=NULL, content_hash=NULL WHERE key IN ({_marks(part)})", part
                ).rowcount
            return n

    def record_failure(
        self, path: str, reason: str, size: int | None, mtime: float | None, content_hash: str | None
    ) -> None:
        """Remember a file that could not be encoded (an ok item already stored for it is kept)."""
        with self._writing() as conn, self._transaction(conn):
            conn.execute(
                "INSERT INTO failures(path, reason, size, mtime, content_hash, time) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET reason=excluded.reason, size=excluded.size, "
                "mtime=excluded.mtime, content_hash=excluded.content_hash, time=excluded.time",
                (str(path), str(reason), size, mtime, content_hash, time.time()),
            )

    def forget_failures(self, paths: Sequence[str]) -> int:
        """Drop failure rows (e.g. for files that no longer exist); returns how many went."""
        with self._writing() as conn, self._transaction(conn):
            gone = 0
            for part in cat.chunks(list(range(len(paths)))):
                sel = [str(paths[i]) for i in part]
                cur = conn.execute(f"DELETE FROM failures WHERE path IN ({_marks(sel)})", sel)
                gone += cur.rowcount
            return gone

    def delete_items(self, item_ids: list[str]) -> list[int]:
        """Remove items (their rows become garbage); returns the keys that were deleted."""
        deleted: list[int] = []
        with self._writing() as conn, self._transaction(conn):
            cat.ensure_thumbnails(conn)
            seq = int(cat.get_meta(conn, "seq") or 0)
            for i in range(0, len(item_ids), cat.SQL_CHUNK):
                ids = [str(x) for x in item_ids[i : i + cat.SQL_CHUNK]]
                rows = conn.execute(
                    f"SELECT key, item_id, path FROM items WHERE item_id IN ({_marks(ids)})", ids
                ).fetchall()
                for key, item_id, path in rows:
                    seq += 1
                    conn.execute("DELETE FROM slots WHERE key=?", (key,))
                    conn.execute("DELETE FROM thumbnails WHERE key=?", (key,))
                    conn.execute("DELETE FROM items WHERE key=?", (key,))
                    conn.execute(
                        "INSERT INTO deletions(key, item_id, seq) VALUES (?, ?, ?)", (key, item_id, seq)
                    )
                    if path is not None:
                        conn.execute("DELETE FROM failures WHERE path=?", (path,))
                    deleted.append(int(key))
            lexical.sync_keys(conn, deleted)  # their full-text rows go in this same transaction
            cat.set_meta(conn, "seq", str(seq))
        return deleted

    # ================================================================== reading records
    def get(self, item_id: str) -> ItemRecord | None:
        """The record for an item id, or None."""
        row = self._db.execute(f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE item_id=?", (item_id,)).fetchone()
        return None if row is None else cat.record_from_row(row)

    def get_by_keys(self, keys: Sequence[int]) -> list[ItemRecord | None]:
        """Records in the order of ``keys`` (None where a key is unknown)."""
        found: dict[int, ItemRecord] = {}
        for part in cat.chunks(keys):
            for row in self._db.execute(
                f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE key IN ({_marks(part)})", part
            ):
                found[int(row[0])] = cat.record_from_row(row)
        return [found.get(int(k)) for k in keys]

    def find_by_path(self, path: str) -> ItemRecord | None:
        """The most recently updated item stored for a media path."""
        row = self._db.execute(
            f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE path=? ORDER BY updated DESC, key DESC LIMIT 1",
            (str(path),),
        ).fetchone()
        return None if row is None else cat.record_from_row(row)

    def file_states(self) -> dict[str, tuple[int | None, float | None, str | None, str]]:
        """path -> (size, mtime, content_hash, status); a recorded failure (newer by design) wins."""
        conn = self._db
        with self._transaction(conn, "DEFERRED"):
            out = {
                row[0]: (row[1], row[2], row[3], row[4])
                for row in conn.execute(
                    "SELECT path, size, mtime, content_hash, status FROM items WHERE path IS NOT NULL ORDER BY updated"
                )
            }
            for row in conn.execute("SELECT path, size, mtime, content_hash FROM failures"):
                out[row[0]] = (row[1], row[2], row[3], "failed")
        return out

    def items(self, kind: str | None = None, status: str | None = "ok") -> Iterator[ItemRecord]:
        """All records in key order, read in pages (no long-lived cursor); ``status=None`` for all."""
        last = -1
        where, params = _item_filter(kind, status)
        sql = f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE key > ? AND {where} ORDER BY key LIMIT 1000"
        while True:
            rows = self._db.execute(sql, [last, *params]).fetchall()
            if not rows:
                return
            for row in rows:
                yield cat.record_from_row(row)
            last = int(rows[-1][0])

    def count_items(self, kind: str | None = None, status: str | None = "ok") -> int:
        """How many records :meth:`items` would yield with the same arguments."""
        where, params = _item_filter(kind, status)
        sql = f"SELECT COUNT(*) FROM items WHERE {where}"
        return int(self._db.execute(sql, params).fetchone()[0])

    def item_page(
        self, offset: int, limit: int, kind: str | None = None, status: str | None = "ok"
    ) -> list[ItemRecord]:
        """One page of :meth:`items` (key order) without reading the records before it."""
        where, params = _item_filter(kind, status)
        sql = f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE {where} ORDER BY key LIMIT ? OFFSET ?"
        return [cat.record_from_row(r) for r in self._db.execute(sql, [*params, int(limit), int(offset)])]

    def failures(self) -> list[tuple[str, str, float]]:
        """(path, reason, unix time) for every recorded failure, oldest first."""
        return [
            (r[0], r[1], float(r[2]))
            for r in self._db.execute("SELECT path, reason, time FROM failures ORDER BY time, path")
        ]

    def thumbnail(self, key: int) -> tuple[bytes, str] | None:
        """(image bytes, MIME type) of an item's thumbnail, or None (also for a library made before
        thumbnails existed: a reader never adds the table)."""
        try:
            row = self._db.execute("SELECT data, mime FROM thumbnails WHERE key=?", (int(key),)).fetchone()
        except sqlite3.OperationalError as exc:
            if cat.is_missing_table(exc, "thumbnails"):
                return None
            raise
        return None if row is None else (bytes(row[0]), str(row[1]))

    def thumbnail_keys(self, keys: Sequence[int] | None = None) -> set[int]:
        """Which of ``keys`` (default: every item) have a thumbnail, without reading the pictures."""
        try:
            if keys is None:
                return {int(r[0]) for r in self._db.execute("SELECT key FROM thumbnails")}
            found: set[int] = set()
            for part in cat.chunks(keys):
                found.update(
                    int(r[0])
                    for r in self._db.execute(
                        f"SELECT key FROM thumbnails WHERE key IN ({_marks(part)})", part
                    )
                )
            return found
        except sqlite3.OperationalError as exc:
            if cat.is_missing_table(exc, "thumbnails"):
                return set()
            raise

    def has_thumbnails(self, keys: Sequence[int]) -> set[int]:
        """The keys among ``keys`` whose item has a thumbnail (``ItemSummary.has_thumbnail``)."""
        return self.thumbnail_keys(keys)

    def attention(self, keys: Sequence[int]) -> list[dict[str, float]]:
        """Attention weights per key ({} for an unknown key)."""
        found: dict[int, dict[str, float]] = {}
        for part in cat.chunks(keys):
            for k, w in self._db.execute(
                f"SELECT key, weights FROM items WHERE key IN ({_marks(part)})", part
            ):
                found[int(k)] = json.loads(w)
        return [dict(found.get(int(k), {})) for k in keys]

    # ================================================================== full-text (lexical) search
    def has_lexical(self) -> bool:
        """Whether the catalog holds the full-text table (libraries made before it do not)."""
        return lexical.has_table(self._db)

    def lexical_search(
        self, text: str, limit: int, allowed: Callable[[int], bool] | None = None
    ) -> list[lexical.LexicalMatch]:
        """Ok items whose words match ``text``, best bm25 first (see ``mmrec.store.lexical``).

        A library without the table raises :class:`LexicalIndexMissingError`, naming the command
        that builds it: a reader never creates it.
        """
        try:
            return lexical.search(self._db, text, limit, allowed)
        except sqlite3.OperationalError as exc:
            if cat.is_missing_table(exc, lexical.TABLE):
                raise LexicalIndexMissingError(str(self.path)) from None
            raise

    def lexical_words(self, text: str, keys: Sequence[int]) -> dict[int, dict[str, list[str]]]:
        """Per key, the words of each field that ``text`` matched ({} without the table)."""
        try:
            return lexical.matched_words(self._db, text, keys)
        except sqlite3.OperationalError as exc:
            if cat.is_missing_table(exc, lexical.TABLE):
                return {}
            raise

    def lexical_diff(self) -> lexical.LexicalDiff:
        """How the full-text rows disagree with the catalog (read-only; ``mmrec check``)."""
        return lexical.diff(self._db)

    def rebuild_lexical(self) -> int:
        """Rebuild the full-text table from the catalog in one transaction (derived data); rows written."""
        with self._writing() as conn, self._transaction(conn):
            return lexical.rebuild(conn)

    # ================================================================== reading vectors
    def _slots(self, modality: str, keys: Sequence[int]) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for part in cat.chunks(keys):
            for k, s, n in self._db.execute(
                f"SELECT key, row_start, n_rows FROM slots WHERE modality=? AND key IN ({_marks(part)})",
                [modality, *part],
            ):
                out[int(k)] = (int(s), int(n))
        return out

    def vectors(self, modality: str, keys: Sequence[int]) -> list[np.ndarray | None]:
        """(n, d) float32 per key for one modality, None where the item lacks it."""
        vf = self._file(modality)
        if vf is None:
            return [None] * len(keys)
        slots = self._slots(modality, keys)
        out: list[np.ndarray | None] = []
        for k in keys:
            slot = slots.get(int(k))
            out.append(None if slot is None else vf.read(*slot))
        return out

    def fused(self, keys: Sequence[int]) -> np.ndarray:
        """(len(keys), D) fused vectors; an unknown key (or one without a fused vector) raises ItemNotFoundError."""
        vf = self._file(FUSED)
        if vf is None:
            if len(keys):
                raise ItemNotFoundError(f"#{int(keys[0])}")
            return np.zeros((0, 0), dtype=np.float32)
        slots = self._slots(FUSED, keys)
        rows = np.empty(len(keys), dtype=np.int64)
        for i, k in enumerate(keys):
            slot = slots.get(int(k))
            if slot is None:
                raise ItemNotFoundError(f"#{int(k)}")
            rows[i] = slot[0]
        return vf.take(rows)

    def iter_fused(self, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(keys int64, vectors float32) batches over every ok item, in key order, with bounded memory."""
        vf = self._file(FUSED)
        if vf is None:
            return
        last = -1
        # only ok items hold a fused slot (commit_items drops it for failed ones): no join needed
        sql = "SELECT key, row_start FROM slots WHERE modality = ? AND key > ? ORDER BY key LIMIT ?"
        while True:
            rows = self._db.execute(sql, (FUSED, last, int(batch_size))).fetchall()
            if not rows:
                return
            arr = np.asarray(rows, dtype=np.int64)
            yield arr[:, 0].copy(), vf.stream(arr[:, 1])
            last = int(arr[-1, 0])

    def changes_since(self, seq: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(keys to (re)add, keys to remove, current seq) since ``seq``: how an index catches up.

        Keys to remove are deleted items plus items changed to a state without a usable fused
        vector (failed), so an index can apply both lists blindly.
        """
        conn = self._db
        with self._transaction(conn, "DEFERRED"):
            current = int(cat.get_meta(conn, "seq") or 0)
            changed = conn.execute(
                "SELECT i.key, i.status = 'ok' AND s.key IS NOT NULL FROM items i "
                "LEFT JOIN slots s ON s.key = i.key AND s.modality = ? WHERE i.seq > ? ORDER BY i.key",
                (FUSED, int(seq)),
            ).fetchall()
            deleted = [
                int(r[0]) for r in conn.execute("SELECT key FROM deletions WHERE seq > ?", (int(seq),))
            ]
        upserted = [int(k) for k, ok in changed if ok]
        removed = sorted(set(deleted) | {int(k) for k, ok in changed if not ok})
        return np.asarray(upserted, dtype=np.int64), np.asarray(removed, dtype=np.int64), current

    def _keys_for_ids(self, conn: sqlite3.Connection, item_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(item_ids))
        for i in range(0, len(unique), cat.SQL_CHUNK):
            part = unique[i : i + cat.SQL_CHUNK]
            for item_id, key in conn.execute(
                f"SELECT item_id, key FROM items WHERE item_id IN ({_marks(part)})", part
            ):
                found[item_id] = int(key)
        return found

    def _existing_keys(self, conn: sqlite3.Connection, keys: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for part in cat.chunks(keys):
            found.update(
                int(r[0]) for r in conn.execute(f"SELECT key FROM items WHERE key IN ({_marks(part)})", part)
            )
        return found

    # ================================================================== maintenance
    def stats(self) -> dict:
        """Counts by kind and status, failures, modalities (dim, rows), bytes on disk, manifest."""
        conn = self._db
        with self._transaction(conn, "DEFERRED"):
            by_kind = dict(conn.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind").fetchall())
            by_status = dict(conn.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
            n_failures = conn.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
            try:
                n_thumbnails = int(conn.execute("SELECT COUNT(*) FROM thumbnails").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not cat.is_missing_table(exc, "thumbnails"):
                    raise
                n_thumbnails = 0
            live = {
                m: (int(c), int(r or 0))
                for m, c, r in conn.execute(
                    "SELECT modality, COUNT(*), SUM(n_rows) FROM slots GROUP BY modality"
                )
            }
            seq = int(cat.get_meta(conn, "seq") or 0)
        modalities = {}
        for m in self._modalities():
            vf = self._file(m)
            if vf is None:
                continue
            items, rows = live.get(m, (0, 0))
            modalities[m] = {"dim": vf.dim, "items": items, "live_rows": rows, "file_rows": vf.n_rows()}
        files = {
            str(p.relative_to(self.path)): p.stat().st_size
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and p.name not in (LOCKFILE, RUN_LOCKFILE)
        }
        return {
            "items": sum(by_kind.values()),
            "by_kind": by_kind,
            "by_status": by_status,
            "failures": int(n_failures),
            "thumbnails": n_thumbnails,
            "modalities": modalities,
            "files": files,
            "bytes_on_disk": sum(files.values()),
            "seq": seq,
            "schema_version": cat.SCHEMA_VERSION,
            "manifest": self.manifest(),
        }

    def compact(self) -> dict[str, tuple[int, int]]:
        """Rewrite each vector file with only live rows; returns modality -> (bytes before, bytes after).

        Maintenance: run it while no other process reads this library (their cached maps would
        point at the old layout). A crash at any point is recovered on the next open.
        """
        result: dict[str, tuple[int, int]] = {}
        with self._writing() as conn:
            for m in self._modalities():
                vf = self._file(m)
                if vf is None:
                    continue
                before = vf.path.stat().st_size
                tmp = vf.path.with_name(vf.path.name + ".compact")
                with self._transaction(conn):
                    slots = conn.execute(
                        "SELECT key, row_start, n_rows FROM slots WHERE modality=? ORDER BY row_start", (m,)
                    ).fetchall()
                    if sum(n for _, _, n in slots) * vf.row_bytes == before:
                        result[m] = (before, before)
                        continue
                    new_starts = rewrite_live_rows(vf, slots, tmp)
                    conn.executemany(
                        "UPDATE slots SET row_start=? WHERE modality=? AND key=?",
                        [(s, m, k) for k, s in new_starts],
                    )
                    cat.set_meta(conn, _PENDING + m, "1")
                self._swap_compacted(conn, m, tmp)
                result[m] = (before, vf.path.stat().st_size)
        return result

    def _swap_compacted(
        self, conn: sqlite3.Connection, modality: str, tmp: Path, new_dim: int | None = None
    ) -> None:
        """Second half of a compaction (or dimension change): the catalog already points at the new layout.

        Every step is idempotent, so recovery on open simply runs it again.
        """
        target = self.vectors_dir / f"{modality}.f32"
        if new_dim is not None:
            write_json_atomic(
                self.vectors_dir / f"{modality}.json",
                {"dim": new_dim, "dtype": "float32", "modality": modality},
            )
        if tmp.exists():
            os.replace(tmp, target)
            fsync_dir(self.vectors_dir)
        with self._files_lock:
            vf = self._files.pop(modality, None)
        if vf is not None:
            vf.drop_map()
        with self._transaction(conn):
            conn.execute("DELETE FROM meta WHERE name=?", (_PENDING + modality,))
            conn.execute("DELETE FROM meta WHERE name=?", (_ROWS + modality,))  # the layout changed

    def _finish_compaction(self) -> None:
        """Recover from a compaction cut short: finish a committed swap, drop an uncommitted temp file."""
        conn = self._db
        pending = conn.execute("SELECT name, value FROM meta WHERE name LIKE ?", (_PENDING + "%",)).fetchall()
        for name, value in pending:
            m = name[len(_PENDING) :]
            new_dim = json.loads(value).get("dim") if value.startswith("{") else None
            self._swap_compacted(conn, m, self.vectors_dir / f"{m}.f32.compact", new_dim=new_dim)
        for stale in self.vectors_dir.glob("*.f32.compact"):
            stale.unlink()


# ====================================================================== helpers
def _new_source(root: str, existing: list[Source]) -> Source:
    """A folder's label (its name, made unique) and prefix (empty only for a library's first folder)."""
    labels = {s.label for s in existing}
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(root).name).strip("-.")[:32] or "source"
    label, n = base, 1
    while label in labels:
        n += 1
        label = f"{base}-{n}"
    return Source(root, label, "" if not existing else f"{label}:")


def _read_holder(fd: int) -> dict:
    """What the holder of ``.run.lock`` wrote about itself ({} while it has not written yet)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether a process still runs (this one does; another user's live process counts too): what
    decides if a writer's temp file or folder may be removed."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _alive(pid_text: str) -> bool:
    """Whether the process of a temp file's pid suffix still runs (unknown suffixes count as alive)."""
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    return pid_alive(pid)


def _is_write_failure(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "full" in text or "disk i/o" in text or "readonly" in text


def _item_filter(kind: str | None, status: str | None) -> tuple[str, list[str]]:
    """The WHERE part (and its parameters) shared by the item listings."""
    where, params = ["1=1"], []
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    return " AND ".join(where), params


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


def _describe_model(info: dict) -> str:
    return f"{info.get('model')} (dim {info.get('dim')}, version {info.get('version')})"


def _prepare(
    item: EncodedItem,
) -> tuple[ItemRecord, dict[str, np.ndarray], np.ndarray | None, dict[str, float], tuple[bytes, str] | None]:
    """Validate one item before anything is written."""
    rec = item.record
    check_record(rec)
    rows = {str(m): as_rows(rec.item_id, str(m), v) for m, v in (item.vectors or {}).items()}
    fused = as_fused(rec.item_id, item.fused)
    if rec.status == "ok" and fused is None:
        raise InvalidInputError(rec.item_id, "fused", "an ok item needs a fused vector")
    thumb = None if item.thumbnail is None else check_thumbnail(rec.item_id, item.thumbnail)
    if rec.status != "ok":
        fused = None  # a failed item must never reach an index
        thumb = None
    return rec, rows, fused, check_weights(rec.item_id, item.weights or {}), thumb


_UPSERT = (
    "INSERT INTO items(item_id, path, kind, content_hash, size, mtime, duration_s, title, description, tags, "
    "metadata, status, error, fusion_version, weights, seq, created, updated) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(item_id) DO UPDATE SET path=excluded.path, kind=excluded.kind, "
    "content_hash=excluded.content_hash, size=excluded.size, mtime=excluded.mtime, "
    "duration_s=excluded.duration_s, title=excluded.title, description=excluded.description, "
    "tags=excluded.tags, metadata=excluded.metadata, status=excluded.status, error=excluded.error, "
    "fusion_version=excluded.fusion_version, weights=excluded.weights, seq=excluded.seq, "
    "updated=excluded.updated"
)  # insert or replace by item_id, keeping the key and the created time
