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

from encoders.base import SpeechGate, SpeechSignals, Transcript

GATE_VERSION = "1"

# One "word" per CJK ideograph, kana or hangul syllable (those scripts put no spaces between words),
# else one per run of letters or digits.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


@dataclass(frozen=True)
class GateThresholds:
    """Where each test draws its line, and why. Measured with ``scripts/eval_speech_gate.py`` on the
    spoken set (120 espeak-ng clips), 103 tuxpaint sound effects and 8 music clips (Vibe Ace, Big Buck
    Bunny): the defaults keep 94/120 spoken clips (English 71/80) and 0/111 non-speech clips.

    - ``min_vad_share`` 0.1: Silero VAD (threshold 0.5, no padding) marks voiced frames. Every spoken
      clip had >= 0.66; 92 of the 111 non-speech clips had < 0.1 and are not even decoded. 0.3 or 0.5
      dropped nothing more here, but the share is of the whole clip, and a long video with a little
      talk must pass: 0.1.
    - ``max_no_speech_prob`` 0.6: Whisper's own p(no speech) for the windows that gave the text; Whisper
      skips a window above 0.6 too. Spoken clips reached 0.51; Big Buck Bunny's "Hmm" had 0.66.
    - ``min_avg_logprob`` -1.0: mean token log-probability, Whisper's own line for a failed decode.
      The 9 English clips it drops were misheard (23% of their words right against 80% for the kept
      ones: Thai, Spanish or spelt letters); -1.1 would keep a ghost's "Oh no!" in a sound effect.
    - ``max_compression_ratio`` 2.4: zlib ratio of the text, Whisper's limit for a looping decode. No
      clip here reached it (spoken at most 1.86); it guards long clips, where loops run long.
    - ``min_words`` 2 distinct words (CJK by character): the hallucinations left after the tests above
      are one word, once or looped ("Hmm", "Oh", "S-S-S-S-S-S-S"); without this test 4 sound effects were
      kept. It also drops real one-word speech (a stamp's spoken name), which carries little to search.
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


def token_weighted(values: list[float], weights: np.ndarray) -> float | None:
    """Token-weighted mean of a per-segment signal (a long segment says more than a one-token one);
    None when no segment gave text."""
    if not values:
        return None
    return round(float(np.average(np.asarray(values, dtype=np.float64), weights=weights)), 4)


def dropped(gate: SpeechGate) -> Transcript:
    """The transcript of a clip the gate refused: no text, no speech block, the decision kept."""
    return Transcript(text="", language=None, language_probability=0.0, has_speech=False, gate=gate)
