"""probe() on the real fetched media: kinds by content, stream facts, duration sanity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from encoders.media import MediaInfo, probe


def test_bigbuckbunny(bigbuckbunny: Path) -> None:
    info = probe(bigbuckbunny)
    assert info.kind == "video" and info.has_video and info.has_audio
    assert (info.width, info.height) == (1280, 720)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(5.312, abs=0.05)
    assert (info.sample_rate, info.channels) == (48000, 6)
    assert info.codecs == ("h264", "aac")
    assert info.rotation == 0 and info.warnings == ()


def test_bikes_has_no_audio(bikes: Path) -> None:
    info = probe(bikes)
    assert info.kind == "video" and not info.has_audio
    assert info.sample_rate is None and info.channels is None
    assert (info.width, info.height) == (640, 272)
    assert info.duration_s == pytest.approx(10.0, abs=0.05)


def test_cover_art_ogg_is_audio(vibe_ace: Path) -> None:
    info = probe(vibe_ace)
    assert info.kind == "audio" and info.has_audio and not info.has_video
    covers = [s for s in info.streams if s.type == "video"]
    assert len(covers) == 1 and covers[0].attached_pic and covers[0].codec == "mjpeg"
    assert info.duration_s == pytest.approx(61.46, abs=0.1)
    assert (info.sample_rate, info.channels) == (44100, 2)
    assert info.width is None  # the cover's size is not the item's geometry


@pytest.mark.parametrize(
    "name",
    [
        "lena.wav",
        "lena.mp3",
        "lena.ogg",
        "lena.opus",
        "lena.flac",
        "lena.m4a",
        "lena.aac",
        "lena.caf",
        "lena-ulaw.aiff",
        "lena-alaw.caf",
        "lena-ima-adpcm.aiff",
        "lena-vorbis.webm",
        "lena-64.aiff",
    ],
)
def test_lena_formats_agree_on_duration(lena_dir: Path, name: str) -> None:
    info = probe(lena_dir / name)
    assert info.kind == "audio" and info.channels in (1, 2)
    assert info.duration_s == pytest.approx(12.27, abs=0.1)


def test_lying_gsm_header_gets_checked_duration(lena_dir: Path) -> None:
    """lena-gsm.aiff claims 1963 s; the packets say 12.3 s, like every other copy of the recording."""
    info = probe(lena_dir / "lena-gsm.aiff")
    assert info.kind == "audio"
    assert info.duration_s == pytest.approx(12.27, abs=0.1)
    assert any("1963" in w for w in info.warnings)


def test_png_stamp_is_image(badger_png: Path) -> None:
    info = probe(badger_png)
    assert info.kind == "image" and info.container == "png"
    assert (info.width, info.height) == (191, 75) and info.duration_s == 0.0


def test_kind_by_content_not_extension(media_tmp: Path, badger_png: Path, vibe_ace: Path) -> None:
    png_named_mp4 = media_tmp / "stamp.mp4"
    shutil.copyfile(badger_png, png_named_mp4)
    ogg_named_jpg = media_tmp / "music.jpg"
    shutil.copyfile(vibe_ace, ogg_named_jpg)
    assert probe(png_named_mp4).kind == "image"
    assert probe(ogg_named_jpg).kind == "audio"


def test_exif_orientation_swaps_sides(stamp_variants: dict[str, Path]) -> None:
    info = probe(stamp_variants["jpeg_exif6"])
    assert (info.width, info.height) == (75, 191)


def test_rotation_metadata(rotated_mp4: tuple[Path, object]) -> None:
    info = probe(rotated_mp4[0])
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (144, 176)  # display size, sides swapped


def test_unicode_path(unicode_copy: Path) -> None:
    info = probe(unicode_copy)
    assert info.path == str(unicode_copy) and info.kind == "video"


def test_to_dict_is_json_ready(bigbuckbunny: Path) -> None:
    info = probe(bigbuckbunny)
    d = info.to_dict()
    text = json.dumps(d)
    assert json.loads(text)["streams"][1]["channels"] == 6
    assert d["kind"] == "video" and isinstance(info, MediaInfo)


def test_still_codec_cover_vs_mjpeg_video(still_codec_mkvs: dict[str, Path]) -> None:
    """Same codec family, no frame counts: one picture is cover art, a stream of pictures is video."""
    cover = probe(still_codec_mkvs["cover"])
    assert cover.kind == "audio" and not cover.has_video
    assert [s.attached_pic for s in cover.streams if s.type == "video"] == [True]
    camera = probe(still_codec_mkvs["mjpeg"])
    assert camera.kind == "video" and camera.has_audio and (camera.width, camera.height) == (176, 144)
