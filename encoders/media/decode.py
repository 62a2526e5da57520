"""One call that decodes everything an item needs: the unit of work a decode worker returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .audio import AudioClip, load_audio
from .errors import CorruptMediaError, NoAudioError
from .frames import FrameMode, FrameSample, sample_frames
from .image import load_image
from .info import MediaInfo
from .probe import probe


@dataclass(frozen=True)
class DecodeSpec:
    """How much to decode: frame count/mode/size, audio rates (one clip per encoder rate), image size."""

    frame_count: int = 16
    frame_mode: FrameMode = "uniform"
    frame_max_side: int = 448
    audio_rates: tuple[int, ...] = (16000,)
    audio_max_seconds: float = 600.0
    image_max_side: int = 1024


@dataclass
class DecodedMedia:
    """Probe result plus decoded frames (one for an image) and audio per requested rate.

    Only dataclasses, numpy arrays and builtins: cheap to pickle from a worker process.
    """

    info: MediaInfo
    frames: FrameSample | None
    audio: dict[int, AudioClip] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def decode_media(path: str | os.PathLike[str], spec: DecodeSpec | None = None) -> DecodedMedia:
    """Probe ``path`` and decode frames/image and audio per ``spec``.

    A missing or silent audio track is a warning. When one modality of a video is damaged and the
    other decodes, the item keeps the good one (with a warning); it fails only when nothing decodes.
    """
    spec = spec or DecodeSpec()
    info = probe(path)
    warnings = list(info.warnings)
    frames: FrameSample | None = None
    frame_error: CorruptMediaError | None = None
    if info.kind == "image":
        image = load_image(path, max_side=spec.image_max_side)
        frames = FrameSample(times_s=np.zeros(1, dtype=np.float64), frames=[image], reader="pillow")
    elif info.has_video:
        try:
            frames = sample_frames(
                path, count=spec.frame_count, mode=spec.frame_mode, max_side=spec.frame_max_side
            )
            warnings.extend(frames.warnings)
        except CorruptMediaError as exc:
            if not info.has_audio:
                raise
            frame_error = exc
            warnings.append(f"frames unusable: {exc.reason}")
    audio: dict[int, AudioClip] = {}
    if info.has_audio:
        for rate in dict.fromkeys(spec.audio_rates):
            try:
                clip = load_audio(path, rate, max_seconds=spec.audio_max_seconds)
            except NoAudioError as exc:
                warnings.append(f"audio absent: {exc.reason}")
                break
            except CorruptMediaError as exc:
                if frames is None:
                    raise
                warnings.append(f"audio unusable: {exc.reason}")
                break
            audio[rate] = clip
            warnings.extend(w for w in clip.warnings if w not in warnings)
    if frame_error is not None and not audio:
        raise frame_error
    return DecodedMedia(info=info, frames=frames, audio=audio, warnings=warnings)
