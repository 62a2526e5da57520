"""Load an audio track as mono float32 at a chosen rate, in bounded time and memory.

Short files are decoded whole. Files longer than ``max_seconds`` are read as evenly spread windows
(one seek each), so a two-hour file costs about ``max_seconds`` of decoding. Downmix (e.g. 5.1) and
resampling are done by FFmpeg's resampler. No audio track, or pure silence, is ``NoAudioError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.container
import av.stream
import numpy as np

from .avio import ResilientDemuxer, check_file, open_container, typed_media_errors
from .errors import CorruptMediaError, NoAudioError
from .probe import probe

SILENCE_PEAK = 1e-4  # peak amplitude below which a track counts as silent
MAX_BAD_PACKET_SHARE = 0.25  # more undecodable packets than this means the file is corrupt


@dataclass
class AudioClip:
    """Mono float32 samples; ``windows`` are the (start, end) seconds of the source they came from."""

    waveform: np.ndarray
    sample_rate: int
    duration_s: float  # duration of the whole source track, not of ``waveform``
    windows: list[tuple[float, float]]
    warnings: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Length of the decoded waveform in seconds."""
        return len(self.waveform) / self.sample_rate


@typed_media_errors
def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int,
    max_seconds: float = 600.0,
    window_s: float = 30.0,
) -> AudioClip:
    """Decode ``path``'s first audio track to mono float32 at ``sample_rate`` Hz."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if max_seconds <= 0 or window_s <= 0:
        raise ValueError("max_seconds and window_s must be positive")
    p = check_file(path)
    info = probe(p)
    if not info.has_audio:
        raise NoAudioError(p, f"no audio track (kind {info.kind})")
    duration = info.duration_s
    warnings = list(info.warnings)
    if duration <= max_seconds:
        spans = [(0.0, duration)]
    else:
        n = max(1, int(max_seconds // window_s))
        win = min(window_s, max_seconds)
        starts = np.linspace(0.0, duration - win, n) if n > 1 else np.array([(duration - win) / 2])
        spans = [(float(s), float(s) + win) for s in starts]
    pieces: list[np.ndarray] = []
    windows: list[tuple[float, float]] = []
    index = next(s.index for s in info.streams if s.type == "audio")
    whole = duration <= max_seconds
    with open_container(p) as container:
        stream = container.streams[index]
        for start, end in spans:
            if whole:
                end = max_seconds  # bound the decode even when the header understates the length
            samples = _decode_span(p, container, stream, start, end, sample_rate, whole, warnings)
            if whole and len(samples) >= int(round(max_seconds * sample_rate)):
                warnings.append(
                    f"audio runs past its stated {duration:.1f} s; kept the first {max_seconds:g} s"
                )
            if len(samples):
                pieces.append(samples)
                windows.append((start, start + len(samples) / sample_rate))
    waveform = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    if waveform.size == 0:
        raise CorruptMediaError(p, "audio track decoded to no samples")
    if float(np.max(np.abs(waveform))) < SILENCE_PEAK:
        raise NoAudioError(p, "audio track is silent")
    return AudioClip(
        waveform=np.ascontiguousarray(waveform, dtype=np.float32),
        sample_rate=sample_rate,
        duration_s=duration,
        windows=windows,
        warnings=warnings,
    )


class _Resampler:
    """FFmpeg resampler to mono float32 that restarts when the input format changes mid-stream.

    Damaged AAC can decode to frames with another layout or rate; one fixed resampler would raise.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.changes = 0
        self._key: tuple[str, str, int] | None = None
        self._inner: av.AudioResampler | None = None

    def resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        out: list[av.AudioFrame] = []
        if key != self._key:
            if self._inner is not None:
                out.extend(self.flush())
                self.changes += 1
            self._inner = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
            self._key = key
        assert self._inner is not None
        out.extend(self._inner.resample(frame))
        return out

    def flush(self) -> list[av.AudioFrame]:
        return self._inner.resample(None) if self._inner is not None else []


class _Collector:
    """Gathers resampled chunks, first dropping the samples decoded before the window start."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.count = 0
        self.skip = 0

    def add(self, frames: list[av.AudioFrame]) -> None:
        for rf in frames:
            chunk = rf.to_ndarray().reshape(-1)
            if self.skip:
                drop = min(self.skip, len(chunk))
                chunk, self.skip = chunk[drop:], self.skip - drop
            if len(chunk):
                self.chunks.append(chunk.astype(np.float32, copy=False))
                self.count += len(chunk)

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)


def _decode_span(
    p: Path,
    container: av.container.InputContainer,
    stream: av.stream.Stream,
    start: float,
    end: float,
    rate: int,
    whole: bool,
    warnings: list[str],
) -> np.ndarray:
    """Mono samples covering [start, end) of the source; ``whole`` reads from the very start, no seek."""
    resampler = _Resampler(rate)
    limit = int(round((end - start) * rate))
    got = _Collector()
    started = False
    bad = total = 0
    if not whole:
        container.seek(int(start * av.time_base), backward=True)
    packets = ResilientDemuxer(container, stream)
    for packet in packets:
        if packet.size == 0:
            continue  # flush packet: the resampler flush below covers it
        total += 1
        try:
            frames = packet.decode()
        except av.FFmpegError:
            bad += 1
            continue
        for frame in frames:
            if not started:
                started = True
                first = float(frame.time) if frame.time is not None else start
                got.skip = 0 if whole else max(0, int(round((start - first) * rate)))
            frame.pts = None  # the resampler must not reject timestamp gaps after a seek
            got.add(resampler.resample(frame))
        if got.count >= limit:
            break
    if packets.errors:
        warnings.append(f"audio demuxer resynchronised after {packets.errors} damaged span(s)")
    got.add(resampler.flush())
    if resampler.changes:
        warnings.append(f"audio format changed {resampler.changes} time(s) mid-stream (damaged data?)")
    if total and bad / total > MAX_BAD_PACKET_SHARE:
        raise CorruptMediaError(p, f"{bad} of {total} audio packets do not decode")
    if bad:
        warnings.append(f"skipped {bad} undecodable audio packet(s) of {total}")
    return got.samples()[:limit]
