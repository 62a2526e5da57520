"""Probe and decode media files with typed errors and bounded cost (see docs/architecture.md).

Public API: ``probe``, ``sample_frames``, ``load_audio``, ``load_image``, ``decode_media`` with
``DecodeSpec``/``DecodedMedia``, ``run_guarded``, ``make_thumbnail``/``thumbnail_from_path``, the
``MediaError`` family, and ``IMAGE_MAX_PIXELS``.
"""

from __future__ import annotations

from .audio import AudioClip, load_audio
from .decode import DecodedMedia, DecodeSpec, decode_media
from .errors import (
    CorruptMediaError,
    DecoderCrashedError,
    DecodeTimeoutError,
    EmptyFileError,
    ImageTooLargeError,
    MediaError,
    MissingMediaError,
    NoAudioError,
    UnsupportedMediaError,
)
from .frames import FrameMode, FrameSample, sample_frames
from .guard import run_guarded
from .image import IMAGE_MAX_PIXELS, load_image
from .info import MediaInfo, MediaKind, StreamInfo
from .probe import probe
from .thumbnail import ThumbnailImage, make_thumbnail, thumbnail_from_path

__all__ = [
    "AudioClip",
    "CorruptMediaError",
    "DecodeSpec",
    "DecodeTimeoutError",
    "DecodedMedia",
    "DecoderCrashedError",
    "EmptyFileError",
    "IMAGE_MAX_PIXELS",
    "ImageTooLargeError",
    "FrameMode",
    "FrameSample",
    "MediaError",
    "MediaInfo",
    "MediaKind",
    "MissingMediaError",
    "NoAudioError",
    "StreamInfo",
    "ThumbnailImage",
    "UnsupportedMediaError",
    "decode_media",
    "load_audio",
    "load_image",
    "make_thumbnail",
    "probe",
    "run_guarded",
    "sample_frames",
    "thumbnail_from_path",
]
