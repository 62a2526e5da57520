"""aiSFX sound encoder on the audio-lena recording in many formats and on real music."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from encoders.base import AudioEncoder

SR = 44100
SECONDS = 5.0  # 4 blocks per clip: enough to be meaningful, cheap on 2 shared cores
LOSSLESS = [
    "lena.wav",
    "lena.flac",
    "lena.aiff",
    "lena-24.wav",
    "lena-32.wav",
    "lena-f32.caf",
    "lena-64.aiff",
]
LOSSY = ["lena.mp3", "lena.ogg", "lena.opus", "lena.m4a"]


@pytest.fixture(scope="session")
def lena_vectors(
    audio_encoder: AudioEncoder, lena_dir: Path, audio_decoder: Callable[..., np.ndarray]
) -> dict[str, np.ndarray]:
    names = LOSSLESS + LOSSY + ["lena-ulaw.aiff"]
    waves = [audio_decoder(lena_dir / n, SR, max_seconds=SECONDS) for n in names]
    return dict(zip(names, audio_encoder.encode_audio(waves), strict=True))


def test_protocol_and_shape(audio_encoder: AudioEncoder, lena_vectors: dict[str, np.ndarray]) -> None:
    assert isinstance(audio_encoder, AudioEncoder)
    assert audio_encoder.sample_rate == 44100 and audio_encoder.info.dim == 512
    v = lena_vectors["lena.wav"]
    assert v.shape == (512,) and v.dtype == np.float32
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5


def test_lossless_variants_agree(lena_vectors: dict[str, np.ndarray]) -> None:
    ref = lena_vectors["lena.wav"]
    for name in LOSSLESS:
        assert float(lena_vectors[name] @ ref) >= 0.99, name


def test_lossy_variants_stay_close_and_music_is_further(
    audio_encoder: AudioEncoder,
    lena_vectors: dict[str, np.ndarray],
    vibe_ace: Path,
    audio_decoder: Callable[..., np.ndarray],
) -> None:
    ref = lena_vectors["lena.wav"]
    music = audio_encoder.encode_audio([audio_decoder(vibe_ace, SR, max_seconds=SECONDS)])[0]
    music_cos = float(music @ ref)
    for name in LOSSY:
        assert float(lena_vectors[name] @ ref) >= 0.98, name
    # 8-bit mu-law degrades the sound more, yet it is still the same recording, unlike the music
    ulaw = float(lena_vectors["lena-ulaw.aiff"] @ ref)
    assert music_cos < ulaw < 0.999


def test_single_equals_inside_batch_of_32(
    audio_encoder: AudioEncoder, lena_dir: Path, vibe_ace: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    """32 different 2.5 s clips (speech and music at different offsets), each about one block."""
    lena = audio_decoder(lena_dir / "lena.wav", SR)
    music = audio_decoder(vibe_ace, SR, max_seconds=20)
    clips = [src[int(o * SR) : int((o + 2.5) * SR)] for src in (lena, music) for o in np.linspace(0, 9, 16)]
    assert len(clips) == 32
    batch = audio_encoder.encode_audio(clips)
    for i in (0, 17, 31):
        alone = audio_encoder.encode_audio([clips[i]])[0]
        assert float(alone @ batch[i]) >= 0.9999
    assert float(batch[0] @ batch[17]) < 0.99


def test_short_clip_is_padded_and_silence_is_finite(audio_encoder: AudioEncoder) -> None:
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(SR // 10)).astype(np.float32)  # 0.1 s, far below one block
    out = audio_encoder.encode_audio([short, np.zeros(SR, np.float32)])
    assert out.shape == (2, 512) and np.all(np.isfinite(out))
    assert abs(float(np.linalg.norm(out[0])) - 1.0) < 1e-5


def test_bad_waveforms_raise_clear_errors(audio_encoder: AudioEncoder) -> None:
    assert audio_encoder.encode_audio([]).shape == (0, 512)
    with pytest.raises(ValueError, match="waveform 0: expected mono"):
        audio_encoder.encode_audio([np.zeros((2, SR), np.float32)])
    bad = np.zeros(SR, np.float32)
    bad[10] = np.nan
    with pytest.raises(ValueError, match="waveform 1: contains NaN"):
        audio_encoder.encode_audio([np.zeros(SR, np.float32), bad])


@pytest.mark.gpu
def test_cuda_matches_cpu(
    audio_encoder: AudioEncoder, lena_dir: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    from encoders.bundled.audio_aisfx import AisfxAudioEncoder

    wave = audio_decoder(lena_dir / "lena.wav", SR, max_seconds=SECONDS)
    gpu = AisfxAudioEncoder(device="cuda")
    assert float(gpu.encode_audio([wave])[0] @ audio_encoder.encode_audio([wave])[0]) >= 0.9999


def test_torch_front_end_matches_the_packages_librosa_recipe(
    lena_dir: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    """Our torch log-mel reproduces aisfx's librosa spectrogram + 'original' min/max normalisation."""
    import librosa

    from encoders.bundled.audio_aisfx import log_mel

    y = audio_decoder(lena_dir / "lena.wav", SR, max_seconds=3.0)
    ref_mel = librosa.feature.melspectrogram(
        y=y / np.abs(y).max(),
        sr=SR,
        n_mels=96,
        norm=1.0,
        fmin=0.0,
        fmax=22050.0,
        htk=True,
        power=2.0,
        hop_length=1024,
        win_length=2048,
    )
    ref = (np.log10(ref_mel * 10000.0 + 1) / 9.457798957824707).T
    ours = log_mel(y)
    assert ours.shape == ref.shape and ours.shape[1] == 96
    np.testing.assert_allclose(ours, ref, atol=1e-4)
