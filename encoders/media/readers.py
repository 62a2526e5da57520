"""Frame readers: fetch frames by index at a target size, one class per backend.

decord is the fast path (seek + batch decode, downscale inside FFmpeg); PyAV seeking is the
fallback that copes with files decord rejects; torchcodec is used instead of PyAV when importable.
All readers return frames in display orientation (rotation metadata applied) at the requested size.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import av.container
import av.video.stream
import numpy as np
from PIL import Image

from .avio import ResilientDemuxer, open_container
from .errors import CorruptMediaError


@dataclass(frozen=True)
class VideoGeometry:
    """What a reader needs to map frame indices to times: frame count, rate and stream start."""

    frame_count: int
    fps: float
    start_s: float = 0.0


class FrameReader(Protocol):
    """Reads the frames with the given indices, rotated for display and resized to width x height."""

    name: str
    notes: list[str]  # things worth a warning (skipped packets, frames past a truncated end)

    def geometry(self) -> VideoGeometry: ...

    def read(self, indices: Sequence[int], width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """(times in seconds, HxWx3 uint8 frames) for ``indices`` in ascending order."""
        ...


class DecordReader:
    """decord VideoReader. decord applies rotation itself and sizes are in display orientation.

    Its built-in resize fails for some sizes (and for rotated videos), so a failed or misshapen sized
    read is redone at native size, in small batches, and resized with Pillow.
    """

    name = "decord"
    NATIVE_BATCH = 4  # frames per get_batch at native size: bounds memory on 4K

    def __init__(self, path: Path, rotation: int = 0, threads: int = 1) -> None:
        import decord

        self._path = path
        self._rotation = rotation
        self._threads = threads
        self.notes: list[str] = []
        self._decord = decord
        self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)

    def geometry(self) -> VideoGeometry:
        n = len(self._vr)
        ts = self._vr.get_frame_timestamp([0])
        return VideoGeometry(frame_count=n, fps=float(self._vr.get_avg_fps()), start_s=float(ts[0, 0]))

    def read(self, indices: Sequence[int], width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
        idx = [int(i) for i in indices]
        times = self._vr.get_frame_timestamp(idx)[:, 0].astype(np.float64)
        if self._rotation == 0:
            try:
                vr = self._decord.VideoReader(
                    str(self._path),
                    ctx=self._decord.cpu(0),
                    width=width,
                    height=height,
                    num_threads=self._threads,
                )
                batch = vr.get_batch(idx).asnumpy()
                del vr
                if batch.shape[1:] == (height, width, 3):
                    return times, [np.ascontiguousarray(f) for f in batch]
            except self._decord.DECORDError:
                pass  # fall through to native size + Pillow
        frames: list[np.ndarray] = []
        for k in range(0, len(idx), self.NATIVE_BATCH):
            for f in self._vr.get_batch(idx[k : k + self.NATIVE_BATCH]).asnumpy():
                frames.append(resize_rgb(f, width, height))
        return times, frames


def resize_rgb(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of an HxWx3 uint8 frame (no-op when already that size)."""
    if frame.shape[:2] == (height, width):
        return np.ascontiguousarray(frame)
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((width, height), Image.BICUBIC))


class PyAVReader:
    """Seek to the keyframe before each target and decode forward to it; memory stays one GOP."""

    name = "pyav"
    SEEK_GAP_S = 4.0  # nearer targets are reached by decoding forward, which beats a keyframe seek

    def __init__(
        self, path: Path, stream_index: int | None = None, rotation: int = 0, frame_count: int | None = None
    ) -> None:
        """``frame_count``: the probe's checked count, which overrides the container header's."""
        self._path = path
        self._rotation = rotation
        self.notes: list[str] = []
        self.bad_packets = 0
        with open_container(path) as c:
            vs = c.streams[stream_index] if stream_index is not None else c.streams.video[0]
            self._index = vs.index
            rate = vs.average_rate or vs.guessed_rate
            self._fps = float(rate) if rate else 25.0
            tb = vs.time_base
            self._start = float(vs.start_time * tb) if vs.start_time is not None and tb else 0.0
            if frame_count:
                n = frame_count
            elif vs.frames:
                n = int(vs.frames)
            else:
                dur = c.duration / av.time_base if c.duration else 0.0
                n = max(1, int(dur * self._fps))
            self._count = n

    def geometry(self) -> VideoGeometry:
        return VideoGeometry(frame_count=self._count, fps=self._fps, start_s=self._start)

    def read(self, indices: Sequence[int], width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Frames at ``indices``; targets past a truncated end are dropped (noted), not invented."""
        times: list[float] = []
        frames: list[np.ndarray] = []
        half = 0.5 / self._fps
        self.bad_packets = 0
        missing: list[float] = []
        with open_container(self._path) as c:
            vs = c.streams[self._index]
            decoded: Iterator[av.VideoFrame] | None = None
            current = -1.0  # time of the last decoded frame; decode forward instead of seeking nearby
            last: av.VideoFrame | None = None
            for i in indices:
                target = self._start + int(i) / self._fps
                if decoded is None or target < current or target - current > self.SEEK_GAP_S:
                    seek_to = int((target - half) / vs.time_base) if target > half else 0
                    c.seek(seek_to, stream=vs, backward=True)
                    decoded, last = self._frames(c, vs), None
                found = last if last is not None and last.time >= target - half else None
                for frame in decoded if found is None else ():
                    last, current = frame, float(frame.time)
                    if current >= target - half:
                        found = frame
                        break
                if found is None and last is not None and last.time >= target - 3 * half:
                    found = last  # the final frame, a hair before the nominal end
                if found is None:
                    missing.append(target)
                    continue
                sw, sh = (height, width) if self._rotation in (90, 270) else (width, height)
                img = found.reformat(width=sw, height=sh, format="rgb24", interpolation="BICUBIC")
                times.append(float(found.time))
                frames.append(rotate_clockwise(img.to_ndarray(), self._rotation))
        if missing:
            end = f"{times[-1]:.2f} s" if times else "the start"
            self.notes.append(
                f"{len(missing)} of {len(indices)} requested frames lie past the last decodable frame "
                f"({end}); the file looks truncated"
            )
        if self.bad_packets:
            self.notes.append(f"skipped {self.bad_packets} undecodable video packet(s)")
        if not frames:
            raise CorruptMediaError(self._path, "no video frame could be decoded")
        return np.asarray(times, dtype=np.float64), frames

    def _frames(self, c: av.container.InputContainer, vs: av.video.stream.VideoStream) -> Iterator:
        """Decoded frames from the current position, skipping packets that do not decode."""
        packets = ResilientDemuxer(c, vs)
        for packet in packets:
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                self.bad_packets += 1
                continue
            for frame in decoded:
                if frame.pts is not None:
                    yield frame
        self.bad_packets += packets.errors


class TorchCodecReader:
    """torchcodec VideoDecoder (exact seeks); resizing done with Pillow as torchcodec returns full size."""

    name = "torchcodec"

    def __init__(self, path: Path, rotation: int = 0) -> None:
        from torchcodec.decoders import VideoDecoder

        self.notes: list[str] = []
        self._dec = VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
        meta = self._dec.metadata
        # releases that report rotation in their metadata (0.14 does) already return upright frames
        self._rotation = 0 if getattr(meta, "rotation", None) is not None else rotation
        self._geom = VideoGeometry(
            frame_count=int(meta.num_frames or len(self._dec)),
            fps=float(meta.average_fps or 25.0),
            start_s=float(meta.begin_stream_seconds or 0.0),
        )

    def geometry(self) -> VideoGeometry:
        return self._geom

    def read(self, indices: Sequence[int], width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
        batch = self._dec.get_frames_at([int(i) for i in indices])
        data = batch.data.numpy()
        frames = [resize_rgb(rotate_clockwise(f, self._rotation), width, height) for f in data]
        return batch.pts_seconds.numpy().astype(np.float64), frames


def torchcodec_available() -> bool:
    """True when torchcodec is installed (it is optional: it needs system FFmpeg libraries)."""
    return importlib.util.find_spec("torchcodec") is not None


def rotate_clockwise(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a clockwise display rotation given in multiples of 90 degrees."""
    if rotation % 360 == 0:
        return frame
    return np.ascontiguousarray(np.rot90(frame, k=-(rotation // 90)))
