"""faster-whisper base on a real spoken clip and on real music."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from encoders.base import SpeechRecognizer
from encoders.bundled.speech_ct2 import cache_dir, ensure_model_folder

SR = 16000


def test_transcribes_english_speech(
    recognizer: SpeechRecognizer, speech_wav: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    assert isinstance(recognizer, SpeechRecognizer) and recognizer.sample_rate == SR
    result = recognizer.transcribe(audio_decoder(speech_wav, SR))
    assert result.has_speech
    assert "quick brown fox" in result.text.lower()
    assert result.language == "en" and result.language_probability > 0.5


def test_music_has_little_or_no_speech(
    recognizer: SpeechRecognizer, vibe_ace: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    result = recognizer.transcribe(audio_decoder(vibe_ace, SR, max_seconds=20))
    assert len(result.text.split()) <= 3, result.text
    assert result.has_speech == bool(result.text)


def test_silence_and_bad_shapes(recognizer: SpeechRecognizer) -> None:
    quiet = recognizer.transcribe(np.zeros(SR * 2, np.float32))
    assert not quiet.has_speech and quiet.text == "" and quiet.language is None
    with pytest.raises(ValueError, match="expected mono"):
        recognizer.transcribe(np.zeros((2, SR), np.float32))


def test_joined_model_is_reused(recognizer: SpeechRecognizer) -> None:
    """The split model.bin is joined once: a second call must not rewrite it."""
    folder = cache_dir()
    before = os.stat(folder / "model.bin").st_mtime_ns
    assert ensure_model_folder() == folder
    assert os.stat(folder / "model.bin").st_mtime_ns == before
    assert {"config.json", "tokenizer.json", "vocabulary.txt", "model.bin"} <= {
        p.name for p in folder.iterdir()
    }
