"""Small preview pictures, made from the media an encode has already decoded.

A video gets its most telling sampled frame (not the black first one), an image a downscaled
copy, and audio its cover art when the file carries one, else a picture of the sound: a log-mel
spectrogram above a loudness envelope, drawn with numpy and Pillow only (librosa or matplotlib
would add a second of import time to every decode worker). Pictures are JPEG; the drawn audio
picture is WebP (PNG where Pillow lacks WebP), which keeps its flat areas clean at a few kB.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
from PIL import Image, UnidentifiedImageError, features

from .audio import AudioClip, load_audio
from .avio import open_container, typed_media_errors
from .decode import DecodedMedia
from .errors import CorruptMediaError
from .frames import FrameSample, sample_frames
from .guard import run_guarded
from .image import load_image, to_rgb
from .info import MediaInfo
from .probe import probe

ThumbnailSource = Literal["keyframe", "image", "cover", "audio"]

THUMBNAIL_MAX_SIDE = 320
JPEG_QUALITY = 82
AUDIO_ASPECT = 9 / 16  # height / width of the drawn audio picture
AUDIO_RATE = 16000  # rate the backfill decodes audio at
AUDIO_MAX_SECONDS = 120.0  # the backfill's audio budget (spread windows on longer files)
BACKFILL_FRAMES = 8
_MIN_MAX_SIDE = 16
_DB_RANGE = 80.0
_N_MELS = 64
# (position, r, g, b) control points of a dark-to-bright "inferno"-like colour ramp
_RAMP = np.array(
    [
        (0.00, 0, 0, 4),
        (0.15, 31, 12, 72),
        (0.30, 85, 15, 109),
        (0.45, 136, 34, 106),
        (0.60, 186, 54, 85),
        (0.75, 227, 89, 51),
        (0.88, 249, 140, 10),
        (1.00, 252, 255, 164),
    ],
    dtype=np.float64,
)
_BACKGROUND = np.array([18, 18, 24], dtype=np.uint8)
_WAVE_PEAK = np.array([96, 110, 150], dtype=np.uint8)
_WAVE_RMS = np.array([190, 205, 255], dtype=np.uint8)


@dataclass(frozen=True)
class ThumbnailImage:
    """Encoded picture bytes with their MIME type, pixel size and where the picture came from."""

    data: bytes
    mime: str
    width: int
    height: int
    source: ThumbnailSource


def make_thumbnail(
    media: DecodedMedia, max_side: int = THUMBNAIL_MAX_SIDE, use_cover: bool = True
) -> ThumbnailImage | None:
    """A picture for an item whose media is decoded; None when nothing visual or audible was decoded.

    Reads nothing from disk except an audio file's cover art (one packet) when ``use_cover``.
    """
    if max_side < _MIN_MAX_SIDE:
        raise ValueError(f"max_side must be >= {_MIN_MAX_SIDE}, got {max_side}")
    frames = list(media.frames.frames) if media.frames is not None else []
    if frames:
        if media.info.kind == "image":
            return encode_picture(frames[0], max_side, "image")
        return encode_picture(frames[pick_keyframe(frames)], max_side, "keyframe")
    cover_index = _cover_stream(media.info)
    if use_cover and cover_index is not None:
        cover = load_cover(media.info.path, max_side=max_side, stream_index=cover_index)
        if cover is not None:
            return encode_picture(cover, max_side, "cover")
    clip = _best_clip(media.audio)
    if clip is None:
        return None
    return draw_audio(clip.waveform, clip.sample_rate, max_side)


def thumbnail_from_path(
    path: str | os.PathLike[str], max_side: int = THUMBNAIL_MAX_SIDE, timeout_s: float = 60.0
) -> ThumbnailImage | None:
    """Decode just enough of ``path`` for a thumbnail, in a guarded child process (the backfill's unit).

    Raises the ``MediaError`` family like every decode: a hang is ``DecodeTimeoutError``, a crash
    ``DecoderCrashedError``.
    """
    return run_guarded(thumbnail_for_file, os.fspath(path), max_side, timeout_s=timeout_s)


def thumbnail_for_file(
    path: str | os.PathLike[str], max_side: int = THUMBNAIL_MAX_SIDE
) -> ThumbnailImage | None:
    """Unguarded: decode frames or the image (or the cover), and audio only when nothing else draws.

    For callers that already isolate decodes (a worker pool); others use :func:`thumbnail_from_path`.
    """
    info = probe(path)
    frames: FrameSample | None = None
    if info.kind == "image":
        image = load_image(path, max_side=max_side)
        frames = FrameSample(times_s=np.zeros(1), frames=[image], reader="pillow")
    elif info.has_video:
        try:
            frames = sample_frames(path, count=BACKFILL_FRAMES, max_side=max(max_side, 64))
        except CorruptMediaError:
            if not info.has_audio:
                raise
    media = DecodedMedia(info=info, frames=frames)
    thumb = make_thumbnail(media, max_side)
    if thumb is None and info.has_audio:
        media.audio[AUDIO_RATE] = load_audio(path, AUDIO_RATE, max_seconds=AUDIO_MAX_SECONDS)
        thumb = make_thumbnail(media, max_side, use_cover=False)
    return thumb


# ====================================================================== pictures
def pick_keyframe(frames: Sequence[np.ndarray]) -> int:
    """Index of the frame with the most contrast and edge detail, badly exposed frames last.

    Fades, black leaders and flat title cards score low, so a real shot is chosen.
    """
    best, best_score = 0, -1.0
    for i, frame in enumerate(frames):
        grey = _small_grey(frame)
        mean = float(grey.mean())
        detail = float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())
        score = float(grey.std()) + detail
        if not 24.0 <= mean <= 232.0:
            score *= 0.25
        if score > best_score:
            best, best_score = i, score
    return best


def _small_grey(frame: np.ndarray) -> np.ndarray:
    """Luma of a frame sampled to about 96 px on the long side (scoring needs no more)."""
    step = max(1, max(frame.shape[:2]) // 96)
    small = frame[::step, ::step].astype(np.float32)
    if small.ndim == 2:
        return small
    return small[..., 0] * 0.299 + small[..., 1] * 0.587 + small[..., 2] * 0.114


def encode_picture(rgb: np.ndarray, max_side: int, source: ThumbnailSource) -> ThumbnailImage:
    """JPEG of an RGB frame, longer side scaled down (never up) to ``max_side``, aspect kept."""
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).convert("RGB")
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.LANCZOS, reducing_gap=2.0)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return ThumbnailImage(buf.getvalue(), "image/jpeg", im.width, im.height, source)


def _cover_stream(info: MediaInfo) -> int | None:
    """Index of the cover art (attached picture) stream probing found, if any."""
    return next((s.index for s in info.streams if s.type == "video" and s.attached_pic), None)


@typed_media_errors
def load_cover(
    path: str | os.PathLike[str], max_side: int = 1024, stream_index: int | None = None
) -> np.ndarray | None:
    """The cover art of an audio file as RGB uint8 (alpha on white), or None when it has none.

    ``stream_index`` (from an earlier probe) saves probing the file again.
    """
    index = _cover_stream(probe(path)) if stream_index is None else stream_index
    if index is None:
        return None
    with open_container(path) as container:
        stream = container.streams[index]
        for packet in container.demux(stream):
            if not packet.size:
                continue
            try:
                with Image.open(io.BytesIO(bytes(packet))) as im:
                    im.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, much faster
                    im.load()
                    rgb = to_rgb(im)
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                decoded = packet.decode()
                if not decoded or not isinstance(decoded[0], av.VideoFrame):
                    return None
                rgb = decoded[0].to_image().convert("RGB")
            if max(rgb.size) > max_side:
                rgb.thumbnail((max_side, max_side), Image.LANCZOS)
            return np.asarray(rgb, dtype=np.uint8)
    return None


# ====================================================================== audio picture
def _best_clip(audio: dict[int, AudioClip]) -> AudioClip | None:
    """The decoded clip with the highest rate (more of the spectrum to draw), if any has samples."""
    usable = [c for c in audio.values() if c.waveform is not None and len(c.waveform)]
    return max(usable, key=lambda c: c.sample_rate, default=None)


def draw_audio(waveform: np.ndarray, sample_rate: int, max_side: int = THUMBNAIL_MAX_SIDE) -> ThumbnailImage:
    """A ``max_side`` x 9/16 picture: log-mel spectrogram (low pitches at the bottom) over a loudness band."""
    width = max_side
    height = max(8, round(max_side * AUDIO_ASPECT))
    wave_h = max(4, height // 4)
    spec_h = height - wave_h
    y = np.asarray(waveform, dtype=np.float32).reshape(-1)
    spec = _log_mel_columns(y, sample_rate, width)  # (n_mels, width) in 0..1
    spec_img = Image.fromarray(np.round(spec[::-1] * 255).astype(np.uint8), mode="L")
    spec_img = spec_img.resize((width, spec_h), Image.BILINEAR)
    lut = _colour_lut()
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:spec_h] = lut[np.asarray(spec_img)]
    canvas[spec_h:] = _draw_envelope(y, width, wave_h)
    im = Image.fromarray(canvas, mode="RGB")
    buf = io.BytesIO()
    if features.check("webp"):
        im.save(buf, "WEBP", quality=80, method=1)
        mime = "image/webp"
    else:
        im.save(buf, "PNG", optimize=True)
        mime = "image/png"
    return ThumbnailImage(buf.getvalue(), mime, width, height, "audio")


def _log_mel_columns(y: np.ndarray, sample_rate: int, columns: int, per_column: int = 2) -> np.ndarray:
    """Mel power averaged over ``per_column`` short frames per column, in dB scaled to 0..1.

    Only ``columns * per_column`` FFTs, whatever the length: cost does not grow with the file.
    """
    n_fft = 512  # a picture 180 px high needs no finer frequency grid
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    starts = np.linspace(0, len(y) - n_fft, columns * per_column).astype(np.int64)
    frames = y[starts[:, None] + np.arange(n_fft)[None, :]] * np.hanning(n_fft).astype(np.float32)
    spectrum = np.fft.rfft(frames, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power @ _mel_filters(sample_rate, n_fft, _N_MELS).T
    mel = mel.reshape(columns, per_column, _N_MELS).mean(axis=1).T
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    top = float(db.max())
    return np.clip((db - (top - _DB_RANGE)) / _DB_RANGE, 0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangular filters evenly spaced on the HTK mel scale, 20 Hz to Nyquist."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mels = np.linspace(_hz_to_mel(20.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    empty = weights.sum(axis=1) == 0  # filters narrower than one FFT bin: take the nearest bin
    if empty.any():
        nearest = np.abs(freqs[None, :] - edges[1:-1, None]).argmin(axis=1)
        weights[empty, nearest[empty]] = 1.0
    return weights.astype(np.float32)


def _hz_to_mel(hz: float) -> float:
    return float(2595.0 * np.log10(1.0 + hz / 700.0))


def _colour_lut() -> np.ndarray:
    """(256, 3) uint8 colour ramp interpolated from the control points."""
    x = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(x, _RAMP[:, 0], _RAMP[:, c]) for c in (1, 2, 3)], axis=1).astype(np.uint8)


def _draw_envelope(y: np.ndarray, width: int, height: int) -> np.ndarray:
    """Peak (dim) and RMS (bright) per column as bands around the middle line, scaled to the loudest column."""
    stride = max(1, len(y) // (width * 256))  # at most ~256 samples per column are looked at
    sub = np.abs(y[::stride])
    per = max(1, len(sub) // width)
    usable = sub[: per * width] if len(sub) >= width else np.pad(sub, (0, width - len(sub)))
    cols = usable.reshape(width, -1)
    peak = cols.max(axis=1)
    rms = np.sqrt((cols.astype(np.float64) ** 2).mean(axis=1))
    scale = float(peak.max()) or 1.0
    half = (height - 1) / 2.0
    dist = np.abs(np.arange(height, dtype=np.float64)[:, None] - half)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = _BACKGROUND
    out[dist <= (peak / scale * half)[None, :]] = _WAVE_PEAK
    out[dist <= np.maximum(rms / scale * half, 0.5)[None, :]] = _WAVE_RMS
    return out
