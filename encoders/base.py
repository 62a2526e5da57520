"""The small interfaces every model adapter implements.

Each modality has one protocol: a batch in, an L2-normalised float32 array (or records) out,
plus an :class:`EncoderInfo` naming the model, its dimension and version, so a library can
check it only ever mixes vectors from the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

TextRole = Literal["query", "passage"]


class MmrecError(Exception):
    """Root of every error mmrec raises on purpose: a user can act on it, so front ends print it as one line.

    It lives in the lowest layer so that encoder, media and hub errors can join the family without the
    encoders importing ``mmrec``; ``mmrec.errors.MmrecError`` is this same class.
    """


@dataclass(frozen=True)
class EncoderInfo:
    """What produced a vector: enough to refuse mixing vectors of different models."""

    modality: str  # "frames" | "audio" | "text" | "speech"
    model: str  # e.g. "efficientnet-lite0-imagenet" or a hub id / folder name
    dim: int  # 0 for encoders that produce no vector (speech recognisers)
    version: str  # bump when preprocessing or weights change the output
    device: str = "cpu"
    extra: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        """A stable identity string (device excluded: CPU and GPU vectors are interchangeable)."""
        return f"{self.modality}:{self.model}:{self.dim}:{self.version}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Tag:
    """A label a classifier gave to some content, with its probability."""

    label: str
    score: float


@dataclass(frozen=True)
class SpeechSignals:
    """The recogniser's own evidence that a clip holds speech (see ``encoders.speech_gate``).

    A signal is None when it could not be measured: no voice activity means the recogniser never
    ran (no log-probabilities), and a recogniser without a VAD has no ``vad_share``.
    """

    no_speech_prob: float | None  # Whisper's p(<|nospeech|>) for the window(s) that gave the text
    avg_logprob: float | None  # mean log-probability of the decoded tokens (token-weighted)
    compression_ratio: float | None  # len(text) / len(zlib(text)): high means looping, repeated text
    vad_share: float | None  # share of the clip that the voice-activity detector calls speech
    words: int  # distinct words heard (a looped word counts once); each CJK character is one word
    duration_s: float

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True)
class SpeechGate:
    """Whether a transcript is kept, why, and the signals the decision used.

    ``heard`` is what the recogniser decoded, kept even when the gate drops it, so a user can see
    what was thrown away (for example "Hmm" heard in music).
    """

    kept: bool
    reason: str  # "speech" when kept, else the first failed test with its numbers
    signals: SpeechSignals
    heard: str = ""
    version: str = "1"  # of the thresholds (encoders.speech_gate.GATE_VERSION)

    def to_dict(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "reason": self.reason,
            "heard": self.heard,
            "version": self.version,
            "signals": self.signals.to_dict(),
        }


@dataclass(frozen=True)
class Transcript:
    """What a speech recogniser heard in an audio track (empty, has_speech False, when the gate drops it)."""

    text: str
    language: str | None  # ISO 639-1 code, None when no speech was found
    language_probability: float
    has_speech: bool
    gate: SpeechGate | None = None  # None from recognisers that do not gate


@runtime_checkable
class FrameEncoder(Protocol):
    """Embeds RGB frames or images; optionally names what it sees (visual tags)."""

    info: EncoderInfo

    def encode_frames(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 RGB arrays of any size -> (N, dim) float32, rows L2-normalised."""
        ...

    def tag_frames(self, frames: Sequence[np.ndarray], top_k: int = 5) -> list[list[Tag]]:
        """Top classifier labels per frame; an empty list per frame when the model has none."""
        ...

    def encode_and_tag(
        self, frames: Sequence[np.ndarray], top_k: int = 5
    ) -> tuple[np.ndarray, list[list[Tag]]]:
        """Both of the above from one pass over the frames (what the item encoder needs)."""
        ...


@runtime_checkable
class AudioEncoder(Protocol):
    """Embeds a mono waveform into one sound vector per clip."""

    info: EncoderInfo
    sample_rate: int

    def encode_audio(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Mono float32 waveforms at ``sample_rate`` -> (N, dim) float32, rows L2-normalised."""
        ...


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Transcribes speech in a mono waveform and detects its language."""

    info: EncoderInfo
    sample_rate: int

    def transcribe(self, waveform: np.ndarray) -> Transcript: ...


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds text; ``role`` selects query or passage prompts where the model has them."""

    info: EncoderInfo

    def encode_text(self, texts: Sequence[str], role: TextRole = "passage") -> np.ndarray:
        """Texts -> (N, dim) float32, rows L2-normalised. Empty strings are allowed."""
        ...


@runtime_checkable
class CrossModalTextTower(Protocol):
    """A text tower that maps text into another modality's space (CLIP's or CLAP's text side)."""

    info: EncoderInfo
    target_modality: str  # "frames" or "audio"

    def encode_text(self, texts: Sequence[str], role: TextRole = "query") -> np.ndarray: ...


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32; zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)
