"""What probing a file tells us: plain dataclasses that pickle and turn into JSON-ready dicts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

MediaKind = Literal["video", "audio", "image"]


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a container, as far as deciding what to decode needs."""

    index: int
    type: str  # "video" | "audio" | "subtitle" | "data" | ...
    codec: str
    attached_pic: bool = False  # cover art inside an audio file
    frames: int = 0
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class MediaInfo:
    """Summary of a media file: its kind (decided by content, not extension) and main stream facts."""

    path: str
    kind: MediaKind
    container: str
    duration_s: float
    size_bytes: int
    streams: tuple[StreamInfo, ...] = ()
    fps: float | None = None
    width: int | None = None  # display width (after rotation)
    height: int | None = None
    rotation: int = 0  # clockwise degrees to apply to decoded frames for display
    sample_rate: int | None = None
    channels: int | None = None
    has_audio: bool = False
    has_video: bool = False
    codecs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # the container header's duration or frame count was contradicted by the file and replaced:
    # readers that size buffers from the header (decord) must not be given this file
    header_suspect: bool = False

    def to_dict(self) -> dict:
        """JSON-ready view (tuples become lists) for ``mmrec inspect`` and logs."""
        return asdict(self)
