"""Every bad input gets a typed MediaError with the path in its message; errors survive pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from encoders.media import (
    CorruptMediaError,
    DecoderCrashedError,
    DecodeTimeoutError,
    EmptyFileError,
    MediaError,
    MissingMediaError,
    NoAudioError,
    UnsupportedMediaError,
    decode_media,
    load_audio,
    load_image,
    probe,
    sample_frames,
)

ALL_ERRORS = [
    MediaError,
    MissingMediaError,
    EmptyFileError,
    UnsupportedMediaError,
    CorruptMediaError,
    NoAudioError,
    DecodeTimeoutError,
    DecoderCrashedError,
]

LOADERS = {
    "probe": probe,
    "sample_frames": sample_frames,
    "load_audio": lambda p: load_audio(p, 16000),
    "load_image": load_image,
    "decode_media": decode_media,
}


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_error_str_and_pickle(cls: type[MediaError]) -> None:
    err = cls("/x/视频 a.mp4", "something is wrong")
    assert str(err) == "/x/视频 a.mp4: something is wrong"
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err) and back.reason == "something is wrong"
    assert isinstance(back, MediaError)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_zero_byte_file(loader: str, empty_file: Path) -> None:
    with pytest.raises(EmptyFileError) as info:
        LOADERS[loader](empty_file)
    assert str(info.value).startswith(str(empty_file))


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_missing_file(loader: str, media_tmp: Path) -> None:
    with pytest.raises(MissingMediaError, match="does not exist"):
        LOADERS[loader](media_tmp / "nope.mp4")


@pytest.mark.parametrize("loader", ["probe", "sample_frames", "load_audio", "decode_media"])
def test_truncated_mp4_is_corrupt(loader: str, truncated_mp4: Path) -> None:
    with pytest.raises(CorruptMediaError, match="MP4"):
        LOADERS[loader](truncated_mp4)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_random_bytes_are_unsupported(loader: str, random_mp4: Path) -> None:
    with pytest.raises(UnsupportedMediaError) as info:
        LOADERS[loader](random_mp4)
    assert str(random_mp4) in str(info.value)


def test_dwvw_aiff_is_unsupported_codec(lena_dir: Path) -> None:
    with pytest.raises(UnsupportedMediaError, match="DWVW"):
        probe(lena_dir / "lena-24-dwvw.aiff")
    with pytest.raises(UnsupportedMediaError):
        load_audio(lena_dir / "lena-24-dwvw.aiff", 16000)


def test_raw_pcm_without_header_is_unsupported(lena_dir: Path) -> None:
    """lena.raw is headerless PCM: FFmpeg guesses an image2 stream of size 0x0, which is not media."""
    with pytest.raises(UnsupportedMediaError):
        probe(lena_dir / "lena.raw")


def test_audio_file_has_no_frames(lena_dir: Path) -> None:
    with pytest.raises(UnsupportedMediaError, match="no video stream"):
        sample_frames(lena_dir / "lena.wav")


def test_video_is_not_an_image(bikes: Path) -> None:
    with pytest.raises(UnsupportedMediaError):
        load_image(bikes)


def test_bad_arguments_are_value_errors(bikes: Path) -> None:
    with pytest.raises(ValueError):
        sample_frames(bikes, count=0)
    with pytest.raises(ValueError):
        sample_frames(bikes, mode="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        load_audio(bikes, 0)
