"""Atomic replacement of a whole folder's contents, readable at every moment by other processes.

A save writes a complete, fsynced version into a hidden temp folder inside ``folder``, renames it to
``v-<time>-<pid>-<rand>`` and then atomically replaces the pointer file ``CURRENT`` with that name.
Published versions are never modified, so a reader that resolved the pointer reads one consistent
version; there is no moment without a valid version (the old two-rename swap had one).

Rules for the processes sharing a folder:

* Readers only read: :func:`read_folder` resolves the pointer, reads, and retries when a newer save
  removed the version it was reading. They never repair or delete anything.
* Writers serialise their saves (the library store's writer lock). A save keeps the new version and
  the one it replaced (for readers still reading it), removes older versions, and removes temp folders
  only of processes that are no longer alive, so it never deletes a live writer's work.

Folders written by the earlier layout (files directly in ``folder``, ``<folder>.previous`` after a
crash between two renames, ``.<folder>.tmp-<pid>-*`` siblings) are read as they are and converted by
the next save.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mmrec.store.library import pid_alive

T = TypeVar("T")

POINTER = "CURRENT"
VERSION_PREFIX = "v-"
TEMP_PREFIX = ".tmp-"
LEGACY_FILES = ("index.faiss", "ids.npy", "labels.npy", "meta.json")
READ_ATTEMPTS = 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_path(folder: Path) -> Path:
    """Where the earlier two-rename layout left the old version during a swap."""
    return folder.with_name(folder.name + ".previous")


def _pid_of(name: str, prefix: str, position: int = 1) -> int | None:
    """The writer pid encoded in a temp name (``<prefix><time>-<pid>-<rand>``)."""
    parts = name[len(prefix) :].split("-")
    try:
        return int(parts[position])
    except (IndexError, ValueError):
        return None


def _current_name(folder: Path) -> str | None:
    try:
        name = (folder / POINTER).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return name or None


def resolve(folder: str | Path) -> Path | None:
    """The folder holding the current complete version, or None when nothing was saved yet."""
    folder = Path(folder)
    name = _current_name(folder)
    if name is not None:
        return folder / name
    if (folder / "meta.json").exists():
        return folder  # earlier layout: files directly in the folder
    backup = backup_path(folder)
    if not folder.exists() and (backup / "meta.json").exists():
        return backup  # earlier layout, a writer died (or is) between its two renames
    return None


def read_folder(folder: str | Path, read: Callable[[Path], T]) -> T:
    """Call ``read(version_dir)`` on the current version; retry when a save replaced it meanwhile.

    Raises FileNotFoundError when no version exists, else whatever ``read`` raised on a version that
    was still current afterwards (a genuinely unreadable folder).
    """
    folder = Path(folder)
    for _attempt in range(READ_ATTEMPTS):
        target = resolve(folder)
        if target is None:
            raise FileNotFoundError(f"{folder}: no saved version")
        try:
            return read(target)
        except Exception:
            if resolve(folder) == target:
                raise
        time.sleep(0.005)  # a writer is swapping versions faster than we read; let it finish
    target = resolve(folder)
    if target is None:
        raise FileNotFoundError(f"{folder}: no saved version")
    return read(target)


def write_folder_atomically(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` to fill a fresh version, fsync it, publish it, clean up old versions.

    Callers serialise saves to one folder (``LibraryStore.writing()``); readers may read at any time.
    """
    folder = Path(folder)
    _adopt_legacy_backup(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = folder / f"{TEMP_PREFIX}{stamp}"
    tmp.mkdir()
    try:
        write(tmp)
        for file in tmp.iterdir():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        version = folder / f"{VERSION_PREFIX}{stamp}"
        os.rename(tmp, version)
        previous = _current_name(folder)
        pointer_tmp = folder / f"{TEMP_PREFIX}{stamp}.pointer"
        with open(pointer_tmp, "w", encoding="utf-8") as fh:
            fh.write(version.name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pointer_tmp, folder / POINTER)
        _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            (folder / f"{TEMP_PREFIX}{stamp}.pointer").unlink()
        raise
    _clean(folder, keep={version.name, previous})
    return folder


def _adopt_legacy_backup(folder: Path) -> None:
    """Earlier layout, crashed between its two renames: the backup is the last complete version."""
    backup = backup_path(folder)
    if not folder.exists() and backup.exists():
        os.rename(backup, folder)
    elif backup.exists() and resolve(folder) not in (None, backup):
        shutil.rmtree(backup, ignore_errors=True)


def _clean(folder: Path, keep: set[str | None]) -> None:
    """Remove superseded versions, earlier-layout files, and temps of writers that are gone."""
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(VERSION_PREFIX) and name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
        elif name.startswith(TEMP_PREFIX):
            pid = _pid_of(name, TEMP_PREFIX)
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        elif name in LEGACY_FILES:
            entry.unlink(missing_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):  # the earlier layout's temps
        pid = _pid_of(stale.name, f".{folder.name}.tmp-", position=0)
        if pid is not None and not pid_alive(pid):
            shutil.rmtree(stale, ignore_errors=True)
