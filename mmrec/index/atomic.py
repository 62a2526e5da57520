"""Atomic replacement of a whole folder: the previous version survives a crash at any moment.

Save writes everything into a temp folder beside the target and fsyncs it; then the old folder is
renamed to ``<name>.previous`` and the new one renamed into place. A crash between the two renames
leaves ``<name>.previous`` and no ``<name>``, which :func:`recover` undoes on the next load.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".previous")


def recover(folder: Path) -> None:
    """Finish or undo an interrupted swap so that ``folder`` holds the last complete version."""
    backup = backup_path(folder)
    if not folder.exists() and backup.exists():
        os.rename(backup, folder)
    elif folder.exists() and backup.exists():
        shutil.rmtree(backup, ignore_errors=True)
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def write_folder_atomically(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` to fill a fresh folder, fsync every file, then swap it in for ``folder``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        write(tmp)
        for file in tmp.iterdir():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = backup_path(folder)
    if folder.exists():
        os.rename(folder, backup)
    os.rename(tmp, folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(backup, ignore_errors=True)
    return folder
