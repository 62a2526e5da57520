"""Probe a media file: decide its kind by content and collect the stream facts decoders need.

Images are recognised by Pillow first (cheap header read); everything else goes through PyAV.
Header durations are checked against the file size and, when they disagree grossly, replaced by
the duration measured from the packets (some AIFF/GSM files claim 160x their real length).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.stream
from PIL import Image, UnidentifiedImageError

from .avio import ResilientDemuxer, check_file, open_container, typed_media_errors
from .errors import CorruptMediaError, UnsupportedMediaError
from .image import open_image
from .info import MediaInfo, StreamInfo

IMAGE_FORMATS = frozenset({"PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP", "MPO"})
_COVER_CODECS = frozenset({"mjpeg", "png", "bmp", "gif", "webp", "tiff"})
_ATTACHED_PIC = 1024  # AV_DISPOSITION_ATTACHED_PIC
_MAX_DEMUX_PACKETS = 2_000_000
_MIN_BYTES_PER_S = 8  # no real codec stores less (Opus silence, a still H.264 frame a second: 20+)
_COVER_PACKET_BUDGET = 2_000  # packets read to tell a cover picture from MJPEG video


@typed_media_errors
def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe ``path`` (kind, duration, streams, geometry, audio format); raises a MediaError subclass."""
    p = check_file(path)
    image = _probe_image(p)
    if image is not None:
        return image
    with open_container(p) as container:
        return _probe_av(p, container)


def _probe_image(p: Path) -> MediaInfo | None:
    """MediaInfo for a still image Pillow recognises, else None (so PyAV gets a try)."""
    notes: list[str] = []
    try:
        with open_image(p, notes) as im, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if im.format not in IMAGE_FORMATS:
                return None
            fmt = im.format
            width, height = im.size
            orientation = _orientation(im, notes)
            notes += [f"image metadata: {w.message}" for w in caught]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None
    if orientation in (5, 6, 7, 8):  # EXIF transposes that swap the sides
        width, height = height, width
    return MediaInfo(
        path=str(p),
        kind="image",
        container=fmt.lower(),
        duration_s=0.0,
        size_bytes=p.stat().st_size,
        width=width,
        height=height,
        has_video=False,
        codecs=(fmt.lower(),),
        warnings=tuple(dict.fromkeys(notes)),
    )


def _orientation(im: Image.Image, notes: list[str]) -> int:
    """EXIF orientation (1 = as stored); damaged EXIF is a warning, not a reason to refuse the image."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception as exc:  # Pillow's EXIF parser raises assorted errors on damaged blocks
        notes.append(f"EXIF ignored: {exc.__class__.__name__}: {exc}")
        return 1
    return value if isinstance(value, int) else 1


def _is_cover(p: Path, stream: av.stream.Stream, has_audio: bool) -> bool:
    """Cover art: an attached picture, or a one-frame still-image codec beside an audio track.

    A still-image codec is also how MJPEG cameras store real video, so an unknown frame count
    (Matroska) is settled by looking for a second packet of that stream.
    """
    if int(stream.disposition) & _ATTACHED_PIC:
        return True
    if not has_audio or stream.codec_context.name not in _COVER_CODECS or stream.frames > 1:
        return False
    return stream.frames == 1 or _packet_count(p, stream.index, stop_at=2) < 2


def _packet_count(p: Path, index: int, stop_at: int, budget: int = _COVER_PACKET_BUDGET) -> int:
    """Packets of stream ``index`` among the first ``budget`` packets of the file (at most ``stop_at``)."""
    found = 0
    with open_container(p) as c:
        for n, packet in enumerate(ResilientDemuxer(c, list(c.streams))):
            found += packet.stream.index == index and packet.size > 0
            if found >= stop_at or n >= budget:
                break
    return found


def _stream_info(stream: av.stream.Stream, cover: bool) -> StreamInfo:
    cc = stream.codec_context
    if stream.type == "video":
        rate = stream.average_rate or stream.guessed_rate
        return StreamInfo(
            index=stream.index,
            type="video",
            codec=cc.name,
            attached_pic=cover,
            frames=int(stream.frames or 0),
            width=cc.width,
            height=cc.height,
            fps=float(rate) if rate else None,
        )
    if stream.type == "audio":
        return StreamInfo(
            index=stream.index,
            type="audio",
            codec=cc.name,
            frames=int(stream.frames or 0),
            sample_rate=cc.sample_rate,
            channels=cc.channels,
        )
    name = cc.name if cc is not None else "unknown"
    return StreamInfo(index=stream.index, type=stream.type, codec=name)


def _probe_av(p: Path, container: av.container.InputContainer) -> MediaInfo:
    audio = [
        s for s in container.streams.audio if s.codec_context is not None and s.codec_context.sample_rate
    ]
    has_audio = bool(audio)
    all_video = [s for s in container.streams.video if s.codec_context is not None and s.codec_context.width]
    covers = {s.index for s in all_video if _is_cover(p, s, has_audio)}
    video = [s for s in all_video if s.index not in covers]
    streams = tuple(_stream_info(s, s.index in covers) for s in container.streams)
    if not audio and not video:
        if covers or (all_video and container.format.name in ("image2", "png_pipe", "jpeg_pipe")):
            raise UnsupportedMediaError(p, "still image in a format Pillow cannot read")
        raise UnsupportedMediaError(p, f"no decodable audio or video stream ({container.format.name})")
    warnings: list[str] = []
    main = video[0] if video else audio[0]
    duration = _checked_duration(p, container, main, video + audio, warnings)
    suspect = bool(warnings)  # the header duration was replaced or could not be verified
    info: dict = {}
    if video:
        vs = video[0]
        rate = vs.average_rate or vs.guessed_rate
        rotation = _rotation(container, vs, warnings)
        w, h = vs.codec_context.width, vs.codec_context.height
        if rotation in (90, 270):
            w, h = h, w
        fps = float(rate) if rate else None
        frames = _checked_frames(int(vs.frames or 0), duration, fps, p.stat().st_size, warnings)
        if frames != int(vs.frames or 0):
            suspect = True
            streams = tuple(
                dataclasses.replace(s, frames=frames) if s.index == vs.index else s for s in streams
            )
        info.update(fps=fps, width=w, height=h, rotation=rotation)
    if audio:
        info.update(sample_rate=audio[0].codec_context.sample_rate, channels=audio[0].codec_context.channels)
    return MediaInfo(
        path=str(p),
        kind="video" if video else "audio",
        container=container.format.name,
        duration_s=duration,
        size_bytes=p.stat().st_size,
        streams=streams,
        has_audio=has_audio,
        has_video=bool(video),
        codecs=tuple(s.codec_context.name for s in video + audio),
        warnings=tuple(warnings),
        header_suspect=suspect,
        **info,
    )


def _header_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    if container.duration:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _checked_duration(
    p: Path,
    container: av.container.InputContainer,
    main: av.stream.Stream,
    streams: list[av.stream.Stream],
    warnings: list[str],
) -> float:
    """Header duration, unless the file size says it cannot be true: at the streams' bit rates when
    the header gives them, and in any case at ``_MIN_BYTES_PER_S`` (a Matroska claiming 10^10 s made
    decord abort with std::bad_alloc sizing its frame table)."""
    header = _header_duration(container, main)
    size = p.stat().st_size
    rates = [s.codec_context.bit_rate or 0 for s in streams]
    size_estimate = size * 8 / sum(rates) if rates and all(rates) else None
    longest = size / _MIN_BYTES_PER_S + 1.0
    plausible = header is not None and 0 < header <= longest
    if plausible and size_estimate is not None:
        plausible = 0.5 * size_estimate - 1.0 <= header <= 2.0 * size_estimate + 1.0
    if plausible:
        return float(header)
    measured = _demux_duration(p, main)
    if measured is None or measured <= 0:
        if header is not None and 0 < header <= longest:
            warnings.append("duration could not be verified from packets; header value kept")
            return float(header)
        raise CorruptMediaError(p, "no packets with timestamps: duration unknown")
    if header:
        est = f", file size suggests ~{size_estimate:.1f} s" if size_estimate else ""
        if header > longest:
            est = f", more than a {size}-byte file can hold"
        warnings.append(
            f"header claims {header:.1f} s{est}; using {measured:.2f} s measured from the packets"
        )
    return measured


def _checked_frames(claimed: int, duration: float, fps: float | None, size: int, warnings: list[str]) -> int:
    """The header's frame count, unless it cannot be true: more frames than the file has bytes, or
    far more than duration x rate. Then the count implied by duration x rate (0: unknown).

    decord sizes its frame tables from this count: a patched 2^31 aborts it with std::bad_alloc.
    """
    expected = duration * fps if fps and duration > 0 else None
    if claimed <= size and (expected is None or claimed <= 2.0 * expected + 16):
        return claimed
    corrected = min(size, int(round(expected))) if expected is not None else 0
    warnings.append(
        f"header claims {claimed} video frames in a {size}-byte file; using {corrected} "
        "from duration x frame rate"
    )
    return corrected


def _demux_duration(p: Path, main: av.stream.Stream) -> float | None:
    """End time of the last packet of ``main`` (reads packets, decodes nothing)."""
    end: Fraction | None = None
    with open_container(p) as c:
        s = c.streams[main.index]
        start = s.start_time or 0
        for n, packet in enumerate(ResilientDemuxer(c, s)):
            if packet.pts is not None and packet.size > 0:
                stop = packet.pts + (packet.duration or 0) - start
                end = stop if end is None else max(end, stop)
            if n >= _MAX_DEMUX_PACKETS:
                break
        if end is None or s.time_base is None:
            return None
        return float(end * s.time_base)


def _rotation(container: av.container.InputContainer, stream: av.stream.Stream, warnings: list[str]) -> int:
    """Clockwise display rotation in degrees (0/90/180/270) read from the first decoded frame."""
    try:
        for frame in container.decode(stream):
            return int(round(-float(frame.rotation or 0))) % 360 // 90 * 90
    except av.FFmpegError as exc:
        warnings.append(f"first video frame does not decode ({exc.__class__.__name__})")
    return 0
