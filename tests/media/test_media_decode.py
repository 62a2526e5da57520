"""decode_media(): everything an item needs, per kind, cheap to pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from encoders.media import DecodedMedia, DecodeSpec, decode_media


@pytest.fixture(scope="session")
def bbb_decoded(bigbuckbunny: Path) -> DecodedMedia:
    return decode_media(
        bigbuckbunny, DecodeSpec(frame_count=8, frame_max_side=224, audio_rates=(16000, 22050))
    )


def test_video_with_audio(bbb_decoded: DecodedMedia) -> None:
    assert bbb_decoded.info.kind == "video"
    assert bbb_decoded.frames is not None and len(bbb_decoded.frames.frames) == 8
    assert bbb_decoded.frames.frames[0].shape == (126, 224, 3)
    assert sorted(bbb_decoded.audio) == [16000, 22050]
    for rate, clip in bbb_decoded.audio.items():
        assert clip.sample_rate == rate and abs(clip.seconds - 5.312) < 0.03


def test_pickles_small_and_exact(bbb_decoded: DecodedMedia) -> None:
    blob = pickle.dumps(bbb_decoded)
    raw = sum(f.nbytes for f in bbb_decoded.frames.frames) + sum(
        c.waveform.nbytes for c in bbb_decoded.audio.values()
    )
    assert len(blob) < raw * 1.05 + 20_000  # numpy buffers, no per-element Python objects
    back = pickle.loads(blob)
    assert np.array_equal(back.frames.frames[3], bbb_decoded.frames.frames[3])
    assert back.info == bbb_decoded.info


def test_video_without_audio(bikes: Path) -> None:
    media = decode_media(bikes, DecodeSpec(frame_count=4, frame_max_side=128))
    assert media.audio == {} and media.frames is not None and len(media.frames.frames) == 4


def test_audio_only(vibe_ace: Path) -> None:
    media = decode_media(vibe_ace, DecodeSpec(audio_rates=(16000,), audio_max_seconds=10))
    assert media.info.kind == "audio" and media.frames is None
    assert len(media.audio[16000].waveform) == 10 * 16000


def test_image(badger_png: Path) -> None:
    media = decode_media(badger_png, DecodeSpec(image_max_side=100))
    assert media.info.kind == "image" and media.audio == {}
    assert media.frames is not None and media.frames.reader == "pillow"
    assert [f.shape for f in media.frames.frames] == [(39, 100, 3)]


def test_warnings_carried(lena_dir: Path) -> None:
    media = decode_media(lena_dir / "lena-gsm.aiff")
    assert any("1963" in w for w in media.warnings)
    assert abs(media.audio[16000].seconds - 12.27) < 0.1


def test_non_ascii_path_with_spaces(unicode_copy: Path) -> None:
    media = decode_media(unicode_copy, DecodeSpec(frame_count=4, frame_max_side=96))
    assert " " in str(unicode_copy) and not str(unicode_copy).isascii()
    assert media.frames is not None and media.frames.reader == "decord"  # decord itself coped, no fallback
    assert len(media.frames.frames) == 4 and abs(media.audio[16000].seconds - 5.312) < 0.03
    assert media.warnings == []
