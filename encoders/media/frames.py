"""Sample a bounded number of frames from a video: uniform over the duration, or one per distinct shot.

Only the requested frames are decoded (by index, via seeking), so memory does not grow with the
video's length. decord is tried first; any decord error falls back to torchcodec or PyAV.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .avio import check_file, typed_media_errors
from .errors import CorruptMediaError, MediaError, UnsupportedMediaError
from .probe import probe
from .readers import DecordReader, FrameReader, PyAVReader, TorchCodecReader, torchcodec_available

FrameMode = Literal["uniform", "scene"]
SCENE_PROBE_MAX = 96  # low-res frames looked at to find distinct shots
SCENE_PROBE_SIDE = 64


@dataclass
class FrameSample:
    """Frames (display orientation, RGB uint8) with their presentation times and the reader used."""

    times_s: np.ndarray
    frames: list[np.ndarray]
    reader: str
    warnings: list[str] = field(default_factory=list)


@typed_media_errors
def sample_frames(
    path: str | os.PathLike[str],
    count: int = 16,
    mode: FrameMode = "uniform",
    max_side: int = 448,
    reader: Literal["auto", "decord", "pyav", "torchcodec"] = "auto",
) -> FrameSample:
    """``count`` frames spread over the whole video (``uniform``) or the most distinct shots (``scene``)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if mode not in ("uniform", "scene"):
        raise ValueError(f"mode must be 'uniform' or 'scene', got {mode!r}")
    if max_side < 2:
        raise ValueError(f"max_side must be >= 2, got {max_side}")
    if reader not in ("auto", "decord", "pyav", "torchcodec"):
        raise ValueError(f"reader must be auto, decord, pyav or torchcodec, got {reader!r}")
    p = check_file(path)
    info = probe(p)
    if not info.has_video or info.width is None or info.height is None:
        raise UnsupportedMediaError(p, f"no video stream to sample frames from (kind {info.kind})")
    video = next(s for s in info.streams if s.type == "video" and not s.attached_pic)
    warnings: list[str] = []
    # the probe's checked count, else its checked duration x rate: never the raw header's
    frames = video.frames or (max(1, round(info.duration_s * info.fps)) if info.fps else 0)
    chain = _reader_chain(p, reader, video.index, info.rotation, frames)
    if info.header_suspect and reader == "auto":
        chain = [(name, make) for name, make in chain if name == "pyav"]  # see MediaInfo.header_suspect
    for name, make in chain:
        try:
            return _sample_with(p, make(), info.width, info.height, count, mode, max_side, warnings)
        except MediaError:
            raise
        except Exception as exc:  # decord/torchcodec raise plain RuntimeError/DECORDError on bad data
            if reader != "auto":
                raise CorruptMediaError(p, f"{reader} could not decode frames: {exc}") from None
            warnings.append(f"{name} failed ({exc.__class__.__name__}: {str(exc)[:200]}); falling back")
    raise CorruptMediaError(p, "; ".join(warnings) or "no frame reader could decode this video")


ReaderFactory = Callable[[], FrameReader]


def _reader_chain(
    p: Path, reader: str, video_index: int, rotation: int, frame_count: int
) -> list[tuple[str, ReaderFactory]]:
    """Readers to try in order: decord, then torchcodec when installed, then PyAV (or just the one asked)."""
    factories: dict[str, ReaderFactory] = {
        "decord": lambda: DecordReader(p, rotation),
        "torchcodec": lambda: TorchCodecReader(p, rotation),
        "pyav": lambda: PyAVReader(p, video_index, rotation, frame_count=frame_count or None),
    }
    if reader == "torchcodec" and not torchcodec_available():
        raise ValueError("reader='torchcodec' was requested but torchcodec is not installed")
    if reader != "auto":
        return [(reader, factories[reader])]
    order = ["decord", "torchcodec", "pyav"] if torchcodec_available() else ["decord", "pyav"]
    return [(name, factories[name]) for name in order]


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Display size scaled down (never up) so the longer side is at most ``max_side``; even sides."""
    scale = min(1.0, max_side / max(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def uniform_indices(frame_count: int, count: int) -> np.ndarray:
    """Centres of ``count`` equal slices of the video (unique, so short clips give fewer frames)."""
    centres = (np.arange(count) + 0.5) * frame_count / count
    return np.unique(np.clip(centres.astype(np.int64), 0, frame_count - 1))


def _sample_with(
    p: Path,
    rd: FrameReader,
    width: int,
    height: int,
    count: int,
    mode: FrameMode,
    max_side: int,
    warnings: list[str],
) -> FrameSample:
    geom = rd.geometry()
    if geom.frame_count < 1:
        raise CorruptMediaError(p, "video stream has no frames")
    w, h = target_size(width, height, max_side)
    if mode == "scene":
        indices = _scene_indices(rd, geom.frame_count, count, w, h)
    else:
        indices = uniform_indices(geom.frame_count, count)
    times, frames = rd.read(indices.tolist(), w, h)
    warnings.extend(rd.notes)
    return FrameSample(
        times_s=np.asarray(times, dtype=np.float64), frames=frames, reader=rd.name, warnings=warnings
    )


def _scene_indices(rd: FrameReader, frame_count: int, count: int, w: int, h: int) -> np.ndarray:
    """Pick ``count`` frames that differ most, judged on a bounded low-res pass over the video."""
    n_probe = min(frame_count, max(4 * count, 32), SCENE_PROBE_MAX)
    probe_idx = uniform_indices(frame_count, n_probe)
    if len(probe_idx) <= count:
        return probe_idx
    scale = SCENE_PROBE_SIDE / max(w, h)
    sw, sh = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
    _, small = rd.read(probe_idx.tolist(), sw, sh)
    chosen = pick_distinct(_features(small), count)
    return probe_idx[np.sort(chosen)]


def _features(frames: list[np.ndarray]) -> np.ndarray:
    """Tiny colour thumbnails (8x8x3, 0..1) as vectors: enough to tell shots apart."""
    feats = []
    for f in frames:
        ys = np.linspace(0, f.shape[0], 9).astype(int)
        xs = np.linspace(0, f.shape[1], 9).astype(int)
        cells = [
            f[ys[i] : max(ys[i + 1], ys[i] + 1), xs[j] : max(xs[j + 1], xs[j] + 1)].reshape(-1, 3).mean(0)
            for i in range(8)
            for j in range(8)
        ]
        feats.append(np.concatenate(cells) / 255.0)
    return np.asarray(feats, dtype=np.float32)


def pick_distinct(features: np.ndarray, count: int) -> np.ndarray:
    """Greedy farthest-point selection; a small time term spreads picks when content barely changes."""
    n = len(features)
    pos = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    content = np.sqrt(((features[:, None, :] - features[None, :, :]) ** 2).mean(-1))
    dist = content + 0.05 * np.abs(pos - pos.T)
    chosen = [int(np.argmax(dist.sum(1)))]
    nearest = dist[chosen[0]].copy()
    while len(chosen) < min(count, n):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, dist[nxt])
    return np.asarray(chosen, dtype=np.int64)


__all__ = ["FrameMode", "FrameSample", "sample_frames"]
