"""Fixtures for the bundled-encoder tests: models loaded once per session, plain decoders of our own.

Decoding here is deliberately simple (PyAV / Pillow) so these tests do not depend on encoders.media.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)  # the CI box has 2 cores shared with other jobs


def decode_audio(path: Path, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Whole (or first ``max_seconds`` of the) audio track as mono float32 at ``sample_rate``."""
    try:
        import av
    except ImportError:  # GPU boxes without PyAV: 16-bit WAV through the stdlib
        return _decode_wav(path, sample_rate, max_seconds)
    chunks: list[np.ndarray] = []
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    total = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                arr = out.to_ndarray().reshape(-1)
                chunks.append(arr)
                total += arr.size
            if limit is not None and total >= limit:
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    wave = np.concatenate(chunks).astype(np.float32)
    return wave[:limit] if limit is not None else wave


def _decode_wav(path: Path, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    import wave

    import librosa

    if path.suffix.lower() != ".wav":
        pytest.skip(f"PyAV is not installed here, so {path.name} cannot be decoded (WAV only)")

    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    mono = librosa.resample(pcm.reshape(-1, channels).mean(axis=1), orig_sr=rate, target_sr=sample_rate)
    return mono if max_seconds is None else mono[: int(max_seconds * sample_rate)]


def load_rgb(path: Path) -> np.ndarray:
    """PNG with alpha -> RGB uint8 on white, the way stamps are meant to be seen."""
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    return np.asarray(white.convert("RGB"))


def read_caption(txt: Path, lang: str | None = None) -> str | None:
    """English caption is the first line of a tuxpaint name.txt; translations are ``xx.utf8=...`` lines."""
    lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        return None
    if lang is None:
        return lines[0].strip() or None
    prefix = f"{lang}.utf8="
    for line in lines[1:]:
        if line.startswith(prefix):
            return line[len(prefix) :].strip() or None
    return None


@pytest.fixture(scope="session")
def stamp_pngs(stamps_dir: Path) -> list[Path]:
    """Stamps that have a caption file beside them, in a stable order."""
    return sorted(p for p in stamps_dir.rglob("*.png") if p.with_suffix(".txt").exists())


@pytest.fixture(scope="session")
def caption_pairs(stamps_dir: Path) -> list[tuple[str, str]]:
    """(English, zh_CN) captions of distinct stamps: a few dozen, spread over categories."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for txt in sorted(stamps_dir.rglob("*.txt")):
        en, zh = read_caption(txt), read_caption(txt, "zh_CN")
        if en and zh and en.lower() not in seen:
            seen.add(en.lower())
            pairs.append((en, zh))
    return pairs[:: max(1, len(pairs) // 40)][:40]


@pytest.fixture(scope="session")
def audio_decoder() -> Callable[..., np.ndarray]:
    return decode_audio


@pytest.fixture(scope="session")
def frame_encoder() -> Iterator[object]:
    from encoders.bundled.frames_effnet import EfficientNetFrameEncoder

    yield EfficientNetFrameEncoder(device="cpu", batch_size=16)


@pytest.fixture(scope="session")
def audio_encoder() -> Iterator[object]:
    from encoders.bundled.audio_aisfx import AisfxAudioEncoder

    yield AisfxAudioEncoder(device="cpu")


@pytest.fixture(scope="session")
def text_encoder() -> Iterator[object]:
    from encoders.bundled.text_e5 import E5TextEncoder

    yield E5TextEncoder()


@pytest.fixture(scope="session")
def recognizer() -> Iterator[object]:
    from encoders.bundled.speech_ct2 import FasterWhisperRecognizer

    yield FasterWhisperRecognizer(device="cpu")


@pytest.fixture(scope="session")
def image_loader() -> Callable[[Path], np.ndarray]:
    return load_rgb
