"""Per-modality vector files: append-only raw float32 rows, read by row without loading the file.

A row is only meaningful once a committed catalog slot points at it. Appends are fsynced
before that commit, so a crash leaves at worst unreferenced (garbage) rows at the end, which
:func:`rewrite_live_rows` (``LibraryStore.compact``) drops.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from mmrec.errors import LibraryError
from mmrec.store.manifest import fsync_dir, read_json, write_error, write_json_atomic

ITEMSIZE = 4  # float32


class VectorFile:
    """``vectors/<modality>.f32`` plus ``<modality>.json`` (its dimension)."""

    def __init__(self, folder: Path, modality: str, dim: int) -> None:
        self.folder = folder
        self.modality = modality
        self.dim = int(dim)
        self.row_bytes = self.dim * ITEMSIZE
        self.path = folder / f"{modality}.f32"
        self._map_lock = threading.Lock()
        self._map: tuple[np.memmap, int, int] | None = None  # (map, inode, rows)

    # ------------------------------------------------------------------ creation
    @classmethod
    def open(cls, folder: Path, modality: str) -> VectorFile | None:
        """The file for ``modality`` when it exists (its dim comes from the sidecar JSON)."""
        meta = folder / f"{modality}.json"
        if not meta.exists():
            return None
        data = read_json(meta)
        dim = data.get("dim")
        if not isinstance(dim, int) or dim <= 0 or data.get("dtype", "float32") != "float32":
            raise LibraryError(
                str(meta), f"bad vector file description {data!r} (need dim > 0, dtype float32)"
            )
        return cls(folder, modality, dim)

    @classmethod
    def create(cls, folder: Path, modality: str, dim: int) -> VectorFile:
        """Declare a new modality file; its dim is fixed from then on."""
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            folder / f"{modality}.json", {"dim": int(dim), "dtype": "float32", "modality": modality}
        )
        path = folder / f"{modality}.f32"
        if not path.exists():
            path.touch()
            fsync_dir(folder)
        return cls(folder, modality, dim)

    # ------------------------------------------------------------------ writing
    def append(self, rows: np.ndarray) -> int:
        """Write rows at the end and fsync; returns the first row index. Caller holds the write lock."""
        assert rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[1] == self.dim
        try:
            with open(self.path, "ab") as fh:
                end = fh.seek(0, os.SEEK_END)
                pad = (-end) % self.row_bytes
                if pad:  # a torn row from a crash: skip to the next row boundary, never overwrite
                    fh.write(b"\0" * pad)
                    end += pad
                fh.write(memoryview(np.ascontiguousarray(rows)).cast("B"))  # no extra copy
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # disk full, quota: rows past the catalog's are garbage, nothing is lost
            raise write_error(self.path, exc) from exc
        return end // self.row_bytes

    def n_rows(self) -> int:
        """Complete rows in the file, live or garbage."""
        try:
            return os.path.getsize(self.path) // self.row_bytes
        except FileNotFoundError:
            return 0

    # ------------------------------------------------------------------ reading
    def _mapped(self, need_rows: int) -> np.memmap:
        """A read-only memmap covering at least ``need_rows`` rows; remapped when the file grew or was replaced.

        The cache is one tuple swapped in one assignment, so reader threads never pair a map with
        another map's size.
        """
        st = os.stat(self.path)
        cached = self._map
        if cached is not None and cached[1] == st.st_ino and cached[2] >= need_rows:
            return cached[0]
        with self._map_lock:
            rows = st.st_size // self.row_bytes
            if rows < need_rows:
                raise LibraryError(
                    str(self.path), f"catalog refers to row {need_rows - 1} but the file holds {rows} rows"
                )
            if rows == 0:
                mm = np.zeros((0, self.dim), dtype=np.float32).view(np.memmap)
            else:
                mm = np.memmap(self.path, dtype=np.float32, mode="r", shape=(rows, self.dim))
            self._map = (mm, st.st_ino, rows)
            return mm

    def read(self, row_start: int, n_rows: int) -> np.ndarray:
        """A copy of rows ``[row_start, row_start + n_rows)``."""
        mm = self._mapped(row_start + n_rows)
        return np.array(mm[row_start : row_start + n_rows])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """A copy of single rows picked by index (random access through the memmap)."""
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        mm = self._mapped(int(rows.max()) + 1)
        return np.asarray(mm[rows], dtype=np.float32)

    def stream(self, rows: np.ndarray) -> np.ndarray:
        """Like :meth:`take` but with pread into a fresh buffer, so a full scan keeps no pages mapped (bounded RSS)."""
        if len(rows) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        in_order = bool(np.all(rows[1:] >= rows[:-1]))
        order = None if in_order else np.argsort(rows, kind="stable")
        sorted_rows = rows if order is None else rows[order]
        # runs of consecutive rows become one read each
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [len(sorted_rows)]))
        buf = np.empty((len(rows), self.dim), dtype=np.float32)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for a, b in zip(starts, ends, strict=True):
                nbytes = int(b - a) * self.row_bytes
                offset = int(sorted_rows[a]) * self.row_bytes
                view = memoryview(buf[a:b].reshape(-1).view(np.uint8))
                got = os.preadv(fd, [view], offset)
                if got != nbytes:
                    raise LibraryError(
                        str(self.path), f"short read at row {int(sorted_rows[a])}: file truncated?"
                    )
        finally:
            os.close(fd)
        if order is None:
            return buf
        out = np.empty_like(buf)
        out[order] = buf
        return out

    def drop_map(self) -> None:
        """Forget the cached mapping (after a compaction replaced the file)."""
        with self._map_lock:
            self._map = None


def rewrite_live_rows(
    vf: VectorFile, slots: list[tuple[int, int, int]], tmp_path: Path
) -> list[tuple[int, int]]:
    """Copy the rows that ``slots`` (key, row_start, n_rows) reference into ``tmp_path``, in order.

    Returns the new row_start per slot. The caller makes the swap crash-safe.
    """
    new_starts: list[tuple[int, int]] = []
    pos = 0
    with open(tmp_path, "wb") as fh:
        chunk: list[np.ndarray] = []
        chunk_rows = 0
        for key, start, n in slots:
            chunk.append(vf.stream(np.arange(start, start + n, dtype=np.int64)))
            new_starts.append((key, pos))
            pos += n
            chunk_rows += n
            if chunk_rows >= 16384:
                fh.write(np.concatenate(chunk).tobytes())
                chunk, chunk_rows = [], 0
        if chunk:
            fh.write(np.concatenate(chunk).tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    return new_starts
