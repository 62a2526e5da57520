"""Opening files for decoding with typed errors instead of raw OSError/av exceptions."""

from __future__ import annotations

import os
from pathlib import Path

import av
import av.container

from .errors import EmptyFileError, MissingMediaError
from .sniff import open_failure


def check_file(path: str | os.PathLike[str]) -> Path:
    """The path as a Path, after checking it is an existing, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise MissingMediaError(p, "file does not exist")
    if not p.is_file():
        raise MissingMediaError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise EmptyFileError(p, "file is empty (0 bytes)")
    return p


def open_container(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open ``path`` with PyAV; a file FFmpeg rejects becomes CorruptMediaError or UnsupportedMediaError."""
    p = check_file(path)
    try:
        return av.open(str(p), mode="r", metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise open_failure(p, f"FFmpeg: {getattr(exc, 'strerror', None) or exc}") from None
