"""Speech gating: keep a transcript only where the recogniser's own signals say someone speaks.

Whisper always writes *something*: given music or a door slam it "hears" "Hmm", "Thank you." or a
looping phrase. A stored transcript becomes a speech vector and a searchable text, and every item with
a hallucinated one is pulled towards every other. So each recogniser measures :class:`SpeechSignals`
and :func:`decide` keeps the text only when all tests pass. The thresholds live in
:class:`GateThresholds`, in one place, with the data that set them.
"""

from __future__ import annotations

import importlib.util
import re
import zlib
from dataclasses import dataclass

import numpy as np

from encoders.base import SpeechGate, SpeechSignals

GATE_VERSION = "1"

# One "word" per CJK ideograph, kana or hangul syllable (those scripts put no spaces between words),
# else one per run of letters or digits.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


@dataclass(frozen=True)
class GateThresholds:
    """Where each test draws its line, and why (tuned with ``scripts/eval_speech_gate.py``).

    - ``min_vad_share``: Silero VAD (threshold 0.5, no padding) marks speech frames. Speech clips of
      the spoken set are mostly voiced; music and sound effects have few such frames. The share is of
      the whole clip, so a long video with a little talk needs a low value: 0.1.
    - ``max_no_speech_prob``: Whisper's own p(no speech) for the window that gave the text; Whisper
      itself skips a window above 0.6 (together with a low log-probability), and so do we.
    - ``min_avg_logprob``: the mean token log-probability; Whisper retries a decode below -1.0 as a
      failure. Mishearings of music and noise decode with low confidence.
    - ``max_compression_ratio``: zlib ratio of the text; Whisper's own limit 2.4 marks a looping
      decode ("I'm sorry. I'm sorry. I'm sorry.").
    - ``min_words``: distinct words. The typical hallucinations are one word, once or looped ("Hmm",
      "you", "S-S-S-S"); 2 words (CJK counted by character) still keeps a short real phrase.
    """

    min_vad_share: float = 0.1
    max_no_speech_prob: float = 0.6
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 2.4
    min_words: int = 2


DEFAULT_THRESHOLDS = GateThresholds()


def count_words(text: str) -> int:
    """Distinct words in ``text`` (case-blind), each CJK character counted as one word.

    Distinct, because Whisper's short loops ("S-S-S-S-S-S-S" heard in a hippo's grunt, "Oh! Oh! Oh!")
    are too short for the compression ratio to catch but are one word said again and again.
    """
    return len({w.casefold() for w in _WORD.findall(text)})


def compression_ratio(text: str) -> float:
    """Whisper's repetition measure: UTF-8 length over zlib-compressed length (0 for empty text)."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def decide(
    signals: SpeechSignals, heard: str = "", thresholds: GateThresholds = DEFAULT_THRESHOLDS
) -> SpeechGate:
    """Keep or drop ``heard``: the first failed test is the reason, in words a user can read."""
    t = thresholds
    failed: str | None = None
    if signals.vad_share is not None and signals.vad_share < t.min_vad_share:
        failed = f"little voice activity ({signals.vad_share:.2f} of the clip < {t.min_vad_share})"
    elif not heard.strip():
        failed = "no words recognised"
    elif signals.no_speech_prob is not None and signals.no_speech_prob > t.max_no_speech_prob:
        failed = f"recogniser says no speech (p={signals.no_speech_prob:.2f} > {t.max_no_speech_prob})"
    elif signals.avg_logprob is not None and signals.avg_logprob < t.min_avg_logprob:
        failed = f"recogniser unsure (avg log-prob {signals.avg_logprob:.2f} < {t.min_avg_logprob})"
    elif signals.compression_ratio is not None and signals.compression_ratio > t.max_compression_ratio:
        failed = (
            f"repetitive text (compression ratio {signals.compression_ratio:.2f} > {t.max_compression_ratio})"
        )
    elif signals.words < t.min_words:
        failed = f"too few words ({signals.words} < {t.min_words})"
    return SpeechGate(
        kept=failed is None,
        reason=failed or "speech",
        signals=signals,
        heard=heard.strip(),
        version=GATE_VERSION,
    )


def vad_share(audio: np.ndarray, sample_rate: int = 16000) -> float | None:
    """Share of the clip that Silero VAD (faster-whisper's copy) calls speech; None without faster-whisper.

    Threshold 0.5, no padding, 100 ms gaps split: faster-whisper's own ``duration_after_vad`` pads each
    chunk by 0.4 s and bridges 2 s gaps, which makes a one-second door slam look half voiced.
    """
    if sample_rate != 16000:
        raise ValueError(f"sample_rate: Silero VAD runs at 16000 Hz, got {sample_rate}")
    if importlib.util.find_spec("faster_whisper") is None:
        return None
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if audio.size == 0:
        return 0.0
    chunks = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=100, speech_pad_ms=0))
    return float(sum(c["end"] - c["start"] for c in chunks)) / float(audio.size)
