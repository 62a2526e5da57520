"""Typed media errors: every bad input maps to one of these, never a raw av/decord/Pillow exception.

``str(err)`` is always ``"<path>: <reason>"`` so a log line names the file and what was wrong, and
the classes pickle cleanly so a decode worker can raise them across a process boundary.
"""

from __future__ import annotations

import os

from encoders.base import MmrecError


class MediaError(MmrecError):
    """A media file could not be probed or decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class MissingMediaError(MediaError):
    """The path does not exist or is not a regular file."""


class EmptyFileError(MediaError):
    """The file has zero bytes."""


class UnsupportedMediaError(MediaError):
    """The file is not a format/codec we can read (random bytes, unknown codec, no usable stream)."""


class ImageTooLargeError(UnsupportedMediaError):
    """A still image with more pixels than ``image.IMAGE_MAX_PIXELS``: refused from its header, before
    any pixel is decoded, so a small file cannot make a worker allocate gigabytes.

    ``pixels`` and ``limit`` are attributes as well as part of the message (they survive pickling
    through ``__dict__``; the constructor keeps the base ``(path, reason)`` signature).
    """

    def __init__(
        self, path: str | os.PathLike[str], reason: str, pixels: int | None = None, limit: int | None = None
    ) -> None:
        super().__init__(path, reason)
        self.pixels = pixels
        self.limit = limit


class CorruptMediaError(MediaError):
    """The format is recognised but the data is damaged (truncated, undecodable packets)."""


class NoAudioError(MediaError):
    """No audio track, or only silence: callers treat this as 'modality absent', not as a failure."""


class DecodeTimeoutError(MediaError):
    """Decoding ran past its time budget and the worker process was killed."""


class DecoderCrashedError(MediaError):
    """The decoder process died (signal/abort) without returning a result."""
