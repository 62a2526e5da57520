"""Damaged copies of real files: salvage what decodes, or raise a MediaError; never a raw exception or a hang."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoders.media import DecodeSpec, MediaError, decode_media, load_audio, run_guarded


def _garble(src: Path, dst: Path, start: float, length: float, seed: int) -> Path:
    data = bytearray(src.read_bytes())
    a, n = int(len(data) * start), int(len(data) * length)
    data[a : a + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize(
    ("name", "start", "length"),
    [("bigbuckbunny", 0.4, 0.1), ("bigbuckbunny", 0.7, 0.02), ("vibe", 0.3, 0.05), ("vibe", 0.0005, 0.01)],
)
def test_garbled_files_salvage_or_typed_error(
    media_tmp: Path, bigbuckbunny: Path, vibe_ace: Path, name: str, start: float, length: float
) -> None:
    src = bigbuckbunny if name == "bigbuckbunny" else vibe_ace
    bad = _garble(
        src, media_tmp / f"garbled-{name}-{start}{src.suffix}", start, length, seed=int(start * 1e4)
    )
    spec = DecodeSpec(frame_count=8, frame_max_side=128, audio_max_seconds=600)
    try:
        media = run_guarded(decode_media, bad, spec, timeout_s=120)
    except MediaError as exc:
        assert str(exc).startswith(str(bad))
        return
    assert media.frames is not None or media.audio
    for clip in media.audio.values():
        assert clip.waveform.dtype == np.float32 and np.isfinite(clip.waveform).all()


def test_truncated_mp3_gives_the_part_that_exists(media_tmp: Path, lena_dir: Path) -> None:
    data = (lena_dir / "lena.mp3").read_bytes()
    half = media_tmp / "lena-half.mp3"
    half.write_bytes(data[: len(data) // 2])
    clip = load_audio(half, 16000)
    assert clip.seconds == pytest.approx(12.27 / 2, abs=0.5)
    assert float(np.abs(clip.waveform).max()) > 0.3


def test_ogg_with_garbage_in_the_middle_resynchronises(media_tmp: Path, vibe_ace: Path) -> None:
    """5 % garbage at 30 % of the song: the demuxer resyncs, so nearly all 61 s survive (not just 18 s)."""
    bad = _garble(vibe_ace, media_tmp / "vibe-resync.ogg", 0.3, 0.05, seed=3000)
    clip = load_audio(bad, 16000)
    assert 50.0 < clip.seconds < 61.5
    assert any("resynchronised" in w for w in clip.warnings)


def test_damaged_mp4_keeps_frames_and_audio(media_tmp: Path, bigbuckbunny: Path) -> None:
    """2 % garbage at 70 %: decord gives up, PyAV skips the bad packets, audio restarts its resampler."""
    bad = _garble(bigbuckbunny, media_tmp / "bbb-damaged.mp4", 0.7, 0.02, seed=7000)
    media = decode_media(bad, DecodeSpec(frame_count=8, frame_max_side=128, audio_rates=(16000,)))
    assert media.frames is not None and len(media.frames.frames) == 8
    assert media.audio[16000].seconds > 4.5
    assert any("undecodable" in w for w in media.warnings)
