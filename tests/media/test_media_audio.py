"""load_audio(): downmix, resampling, bounded windows on long files, silence and missing tracks."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from encoders.media import AudioClip, CorruptMediaError, NoAudioError, load_audio


@pytest.fixture(scope="session")
def lena_16k(lena_dir: Path) -> AudioClip:
    return load_audio(lena_dir / "lena.wav", 16000)


def test_resample_44k_to_16k_length(lena_16k: AudioClip, lena_dir: Path) -> None:
    info = sf.info(lena_dir / "lena.wav")
    assert info.samplerate == 44100
    expected = info.frames * 16000 / 44100
    assert lena_16k.sample_rate == 16000 and lena_16k.waveform.dtype == np.float32
    assert lena_16k.waveform.ndim == 1
    assert abs(len(lena_16k.waveform) - expected) <= 2
    assert lena_16k.duration_s == pytest.approx(info.frames / 44100, abs=1e-3)
    assert lena_16k.windows == [(0.0, pytest.approx(lena_16k.seconds))]


def test_resampled_signal_matches_source(lena_16k: AudioClip, lena_dir: Path) -> None:
    """Resampling keeps the waveform: compare with an independent scipy resample of soundfile's samples."""
    from scipy.signal import resample_poly

    data, _ = sf.read(lena_dir / "lena.wav", dtype="float32")
    ref = resample_poly(data, 160, 441)
    n = min(len(ref), len(lena_16k.waveform))
    corr = np.corrcoef(ref[:n], lena_16k.waveform[:n])[0, 1]
    assert corr > 0.99


def test_8k_input_upsampled(lena_8k: Path, lena_16k: AudioClip) -> None:
    clip = load_audio(lena_8k, 16000)
    assert sf.info(lena_8k).samplerate == 8000
    assert abs(len(clip.waveform) - 2 * sf.info(lena_8k).frames) <= 2
    n = min(len(clip.waveform), len(lena_16k.waveform))
    # 8 kHz lost everything above 4 kHz, but the speech envelope is the same recording
    env = [
        np.convolve(np.abs(w[:n]), np.ones(400) / 400, "valid") for w in (clip.waveform, lena_16k.waveform)
    ]
    assert np.corrcoef(env[0], env[1])[0, 1] > 0.95


def test_51_downmix_to_mono(bigbuckbunny: Path) -> None:
    clip = load_audio(bigbuckbunny, 48000)
    assert clip.waveform.ndim == 1
    assert abs(len(clip.waveform) - 5.312 * 48000) <= 1024
    # reference: PyAV's raw 6-channel samples averaged by hand
    with av.open(str(bigbuckbunny)) as c:
        chunks = [f.to_ndarray() for f in c.decode(audio=0)]
    multi = np.concatenate(chunks, axis=1)
    assert multi.shape[0] == 6
    plain_mean = multi.mean(0)
    n = min(len(plain_mean), len(clip.waveform))
    assert np.corrcoef(plain_mean[:n], clip.waveform[:n])[0, 1] > 0.9
    assert np.abs(clip.waveform).max() <= 1.0 + 1e-3


def test_16k_from_51(bigbuckbunny: Path) -> None:
    clip = load_audio(bigbuckbunny, 16000)
    assert abs(len(clip.waveform) - 5.312 * 16000) <= 400 and clip.duration_s == pytest.approx(
        5.312, abs=0.01
    )


def test_long_file_reads_bounded_windows(vibe_ace: Path) -> None:
    full = load_audio(vibe_ace, 16000)
    assert full.seconds == pytest.approx(61.46, abs=0.1) and len(full.windows) == 1
    clip = load_audio(vibe_ace, 16000, max_seconds=20, window_s=5)
    assert len(clip.windows) == 4 and len(clip.waveform) == 4 * 5 * 16000
    starts = [s for s, _ in clip.windows]
    assert starts[0] == 0.0 and clip.windows[-1][1] == pytest.approx(full.duration_s, abs=0.05)
    assert np.allclose(np.diff(starts), np.diff(starts)[0], atol=1e-3)  # evenly spread
    for k, (start, _) in enumerate(clip.windows):
        seg = clip.waveform[k * 80000 : (k + 1) * 80000]
        i = int(round(start * 16000))
        ref = full.waveform[i : i + 80000]
        assert np.corrcoef(seg, ref)[0, 1] > 0.99  # each window really is that part of the song


def test_cover_art_does_not_hide_audio(vibe_ace: Path) -> None:
    clip = load_audio(vibe_ace, 22050, max_seconds=10, window_s=10)
    assert clip.sample_rate == 22050 and len(clip.waveform) == 10 * 22050


def test_no_audio_track(bikes: Path) -> None:
    with pytest.raises(NoAudioError, match="no audio track"):
        load_audio(bikes, 16000)


def test_silence_is_no_audio(silent_wav: Path) -> None:
    with pytest.raises(NoAudioError, match="silent"):
        load_audio(silent_wav, 16000)


def test_gsm_aiff_decodes_to_real_length(lena_dir: Path, lena_16k: AudioClip) -> None:
    clip = load_audio(lena_dir / "lena-gsm.aiff", 16000)
    assert clip.seconds == pytest.approx(lena_16k.seconds, abs=0.05)
    assert any("1963" in w for w in clip.warnings)
    assert any("undecodable" in w for w in clip.warnings)  # its 1-byte last packet


@pytest.mark.parametrize(
    "name", ["lena.mp3", "lena.opus", "lena.flac", "lena-ulaw.aiff", "lena.m4a", "lena.caf"]
)
def test_formats_decode_to_same_length(lena_dir: Path, lena_16k: AudioClip, name: str) -> None:
    clip = load_audio(lena_dir / name, 16000)
    assert clip.seconds == pytest.approx(lena_16k.seconds, abs=0.08)
    assert 0.3 < float(np.abs(clip.waveform).max()) < 1.01


def test_audio_errors_are_typed(truncated_mp4: Path) -> None:
    with pytest.raises(CorruptMediaError):
        load_audio(truncated_mp4, 16000)


def test_long_file_windows_start_where_they_say(long_ramp_flac: Path) -> None:
    """A 20-minute ramp read with a 60 s budget: 6 windows, each beginning at the time it reports."""
    clip = load_audio(long_ramp_flac, 16000, max_seconds=60, window_s=10)
    assert clip.duration_s == pytest.approx(1200.0, abs=0.1)
    assert len(clip.windows) == 6 and len(clip.waveform) == 6 * 10 * 16000  # bounded: 60 s, not 20 min
    assert clip.windows[-1][1] == pytest.approx(1200.0, abs=0.05)
    for k, (start, end) in enumerate(clip.windows):
        assert end - start == pytest.approx(10.0, abs=1e-3)
        seg = clip.waveform[k * 160000 : (k + 1) * 160000]
        value_at = (start + 0.05) % 100.0 / 100.0 - 0.5  # 50 ms in, clear of the resampler's edge
        assert seg[800] == pytest.approx(value_at, abs=0.01)
