"""Tell 'damaged file of a known format' from 'not media at all' when FFmpeg refuses to open a file.

FFmpeg reports both as "Invalid data found"; the first bytes decide which typed error the caller gets.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CorruptMediaError, MediaError, UnsupportedMediaError

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/QuickTime"),
    (0, b"RIFF", "RIFF (WAV/AVI/WebP)"),
    (0, b"OggS", "Ogg"),
    (0, b"fLaC", "FLAC"),
    (0, b"ID3", "MP3"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"FORM", "AIFF"),
    (0, b"caff", "CAF"),
    (0, b"\x89PNG", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"GIF8", "GIF"),
)


def container_guess(head: bytes) -> str | None:
    """Name of the container whose magic bytes start ``head``, or None."""
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _aifc_compression(head: bytes) -> str | None:
    """The 4-character compression type of an AIFF-C file's COMM chunk, if present in ``head``."""
    if head[:4] != b"FORM" or head[8:12] != b"AIFC":
        return None
    pos = head.find(b"COMM", 12)
    if pos < 0 or len(head) < pos + 30:
        return None
    return head[pos + 26 : pos + 30].decode("latin-1")


def open_failure(path: str | Path, detail: str) -> MediaError:
    """The typed error for a file FFmpeg could not open: corrupt when it looks like media, else unsupported."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    compression = _aifc_compression(head)
    if compression is not None:
        return UnsupportedMediaError(
            path, f"AIFF-C audio compressed as {compression!r}, which FFmpeg cannot decode ({detail})"
        )
    guess = container_guess(head)
    if guess is None:
        return UnsupportedMediaError(path, f"not a recognised media format ({detail})")
    return CorruptMediaError(
        path, f"looks like {guess} but cannot be read, probably truncated or damaged ({detail})"
    )
