"""CLAP adapter on a tiny random model, fed real music (Vibe_Ace) and the lena recordings."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from encoders.base import AudioEncoder, CrossModalTextTower
from encoders.hub.clap import ClapAudioEncoder, split_windows
from encoders.hub.errors import HubModelError

from .conftest import CLAP_RATE, CLAP_WINDOW_S  # noqa: TID252


def read_mono(path: Path, rate: int, offset_s: float, duration_s: float) -> np.ndarray:
    """A mono float32 excerpt of a real file at ``rate`` (soundfile decodes wav, mp3 and ogg)."""
    with sf.SoundFile(str(path)) as f:
        f.seek(int(offset_s * f.samplerate))
        data = f.read(int(duration_s * f.samplerate), dtype="float32", always_2d=True).mean(axis=1)
        g = gcd(rate, f.samplerate)
        return resample_poly(data, rate // g, f.samplerate // g).astype(np.float32)


@pytest.fixture(scope="session")
def clap(clap_dir: Path) -> ClapAudioEncoder:
    return ClapAudioEncoder(str(clap_dir), device="cpu", max_windows=4)


@pytest.fixture(scope="session")
def clips(vibe_ace: Path, lena_dir: Path) -> list[np.ndarray]:
    """Music (7 s from 20 s in), lena speech from wav and mp3, and a short 0.5 s piece of the music."""
    music = read_mono(vibe_ace, CLAP_RATE, 20.0, 7.0)
    wav = read_mono(lena_dir / "lena.wav", CLAP_RATE, 0.0, 3.0)
    mp3 = read_mono(lena_dir / "lena.mp3", CLAP_RATE, 0.0, 3.0)
    return [music, wav, mp3, music[: CLAP_RATE // 2].copy()]


def test_protocols_and_rate_from_folder(clap: ClapAudioEncoder, clap_dir: Path) -> None:
    assert isinstance(clap, AudioEncoder)
    tower = clap.text_tower()
    assert isinstance(tower, CrossModalTextTower) and tower.target_modality == "audio"
    assert clap.sample_rate == CLAP_RATE  # read from the saved feature extractor, not CLAP's usual 48 kHz
    assert clap.info.model == clap_dir.name and clap.info.dim == 24
    assert tower.info.dim == clap.info.dim


def test_real_audio_unit_rows(clap: ClapAudioEncoder, clips: list[np.ndarray]) -> None:
    vecs = clap.encode_audio(clips)
    assert vecs.shape == (len(clips), 24) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # The same recording decoded from wav and mp3 is closer than music is to speech.
    assert float(vecs[1] @ vecs[2]) > float(vecs[0] @ vecs[1])


def test_batch_equals_single_and_is_deterministic(clap: ClapAudioEncoder, clips: list[np.ndarray]) -> None:
    batch = clap.encode_audio(clips)
    for i, clip in enumerate(clips):
        assert float(clap.encode_audio([clip])[0] @ batch[i]) >= 0.9999
    np.testing.assert_array_equal(clap.encode_audio(clips), batch)  # no random crops of long clips


def test_long_clip_is_mean_of_its_windows(clap: ClapAudioEncoder, clips: list[np.ndarray]) -> None:
    music = clips[0]
    pieces = split_windows(music, CLAP_RATE * CLAP_WINDOW_S, max_windows=4)
    assert len(pieces) == 4  # 7 s in 2 s windows: 2+2+2+1
    per_window = clap.encode_audio(pieces)
    mean = per_window.mean(axis=0)
    expected = mean / np.linalg.norm(mean)
    assert float(clap.encode_audio([music])[0] @ expected) >= 0.9999


def test_split_windows_caps_and_drops_scraps() -> None:
    wave = np.arange(10_000, dtype=np.float32)
    assert [p.size for p in split_windows(wave, 4000, 10)] == [4000, 4000, 2000]
    assert [p.size for p in split_windows(wave[:8500], 4000, 10)] == [4000, 4000]  # 500-sample scrap dropped
    capped = split_windows(np.arange(40_000, dtype=np.float32), 4000, 3)
    assert [int(p[0]) for p in capped] == [0, 16_000, 36_000]  # spread over the whole clip
    assert len(split_windows(wave[:100], 4000, 3)) == 1


def test_text_tower(clap: ClapAudioEncoder) -> None:
    vecs = clap.text_tower().encode_text(["a dog barking", "music and speech in a video", ""])
    assert vecs.shape == (3, 24) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    single = clap.text_tower().encode_text(["a dog barking"])[0]
    assert float(single @ vecs[0]) >= 0.9999


def test_bad_waveforms_are_named(clap: ClapAudioEncoder, clips: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match=r"waveforms\[1\].*mono"):
        clap.encode_audio([clips[1], np.stack([clips[1], clips[1]])])
    with pytest.raises(ValueError, match=r"waveforms\[0\].*empty"):
        clap.encode_audio([np.zeros(0, dtype=np.float32)])
    bad = clips[1].copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match=r"waveforms\[0\].*NaN"):
        clap.encode_audio([bad])
    assert clap.encode_audio([]).shape == (0, 24)


def test_wrong_model_type_is_a_hub_error(clip_dir: Path) -> None:
    with pytest.raises(HubModelError, match=r"audio model .*tiny-clip.*not CLAP"):
        ClapAudioEncoder(str(clip_dir), device="cpu")
