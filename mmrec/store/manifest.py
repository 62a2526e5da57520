"""manifest.json: a small JSON file that is always either the old or the new version on disk."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mmrec.errors import LibraryError


def read_json(path: Path) -> dict:
    """Parse a JSON object, turning damage into a LibraryError that names the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LibraryError(str(path), f"cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise LibraryError(str(path), "expected a JSON object")
    return data


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Temp file + fsync + os.replace (+ directory fsync) so a crash never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=_jsonable)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise
    fsync_dir(path.parent)


def write_error(path: Path | str, exc: Exception) -> LibraryError:
    """A failed write (disk full, quota, read-only) as one clear error: what was kept, what to do."""
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    return LibraryError(
        str(path),
        f"cannot write ({reason}); what was committed before is kept: free space and run the command again",
    )


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX): fsync the directory entry."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and paths appear in probe metadata; store them as plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def dumps(value: Any) -> str:
    """Compact JSON for catalog columns, tolerant of numpy values (one shared encoder: it is hot)."""
    if not value and isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return _ENCODER.encode(value)
