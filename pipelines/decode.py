"""The decode stage: one file in, one :class:`DecodedMedia` out, run inside an engine worker.

Kept in its own small module so worker processes import only the media code, never torch models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from encoders.media.decode import DecodedMedia, DecodeSpec, decode_media
from encoders.media.thumbnail import ThumbnailImage
from pipelines.thumbnails import safe_thumbnail


@dataclass(frozen=True)
class DecodeTask:
    """What a worker needs (picklable): the file and how to decode it."""

    path: str
    spec: DecodeSpec


@dataclass
class Decoded:
    """A worker's answer: the media, its thumbnail, and the seconds each took (per-stage timings)."""

    media: DecodedMedia
    seconds: float
    thumbnail: ThumbnailImage | None = None
    thumbnail_s: float = 0.0


def decode_task(task: DecodeTask) -> Decoded:
    """Top-level (picklable) worker function; media errors propagate as typed exceptions."""
    t0 = time.perf_counter()
    media = decode_media(task.path, task.spec)
    seconds = time.perf_counter() - t0
    thumb, thumb_s = safe_thumbnail(media)  # here, not in the main process: the workers run in parallel
    return Decoded(media=media, seconds=seconds, thumbnail=thumb, thumbnail_s=thumb_s)


def spec_for_models(audio_rate: int | None, speech_rate: int | None, frame_count: int = 16) -> DecodeSpec:
    """Decode audio at exactly the rates the loaded sound and speech models want."""
    rates = tuple(sorted({r for r in (audio_rate, speech_rate) if r}))
    return DecodeSpec(frame_count=frame_count, audio_rates=rates)


def spec_for_model_set(models: Any, speech: bool = True, frame_count: int = 16) -> DecodeSpec:
    """The decode spec a loaded model set needs (reading the rates loads those models)."""
    audio_rate = models.audio.sample_rate if getattr(models, "audio", None) is not None else None
    speech_rate = (
        models.speech.sample_rate if speech and getattr(models, "speech", None) is not None else None
    )
    return spec_for_models(audio_rate, speech_rate, frame_count=frame_count)
