"""Opening files for decoding with typed errors instead of raw OSError/av exceptions."""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import av
import av.container
import av.stream

from .errors import CorruptMediaError, EmptyFileError, MediaError, MissingMediaError
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


F = TypeVar("F", bound=Callable[..., Any])


def typed_media_errors(fn: F) -> F:
    """Turn any FFmpeg/decoder exception escaping ``fn(path, ...)`` into CorruptMediaError for that path.

    The specific handlers inside each function give better reasons; this is the safety net that keeps
    raw ``av`` errors (damaged data met mid-stream, odd codec parameters) away from callers.
    """

    @functools.wraps(fn)
    def wrapper(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(path, *args, **kwargs)
        except MediaError:
            raise
        except (av.FFmpegError, EOFError, struct.error) as exc:
            raise CorruptMediaError(path, f"decoding failed: {exc.__class__.__name__}: {exc}") from None

    return wrapper  # type: ignore[return-value]


class ResilientDemuxer:
    """Packets of one stream (or several) that keep coming after damaged container data.

    FFmpeg's demuxers resynchronise (Ogg pages, MP4 samples) when asked again after an error, so a
    burst of garbage costs the damaged span only, not the rest of the file. ``errors`` counts the
    errors met; after ``max_errors`` the stream is treated as ended.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.stream.Stream | Sequence[av.stream.Stream],
        max_errors: int = 32,
    ) -> None:
        self.container = container
        self.streams = tuple(stream) if isinstance(stream, Sequence) else (stream,)
        self.max_errors = max_errors
        self.errors = 0

    def __iter__(self) -> Iterator[av.Packet]:
        while True:
            try:
                for packet in self.container.demux(*self.streams):
                    if packet.size or packet.pts is not None:
                        yield packet
                return
            except av.FFmpegError:
                self.errors += 1
                if self.errors >= self.max_errors:
                    return
