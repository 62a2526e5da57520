"""Whisper speech recognition from a hub id or folder (transformers), 30-second windows for long audio.

One decoder step after ``<|startoftranscript|>`` gives both numbers Whisper was trained to emit
there: the distribution over language tokens (language detection) and the probability of the
no-speech token. Both come from the same logits, so language detection costs one short forward
per window; the transcript is then decoded greedily in the detected language.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from encoders.base import EncoderInfo, Transcript
from encoders.hub.common import ADAPTER_VERSION, check_waveform, load_transformers_model
from encoders.hub.source import resolve_source

ROLE = "speech"
_LANG_TOKEN = re.compile(r"^<\|([a-z]{2,3})\|>$")


def language_code(token: str) -> str:
    """``"<|de|>"`` -> ``"de"``; anything else is a ValueError (not a language token)."""
    match = _LANG_TOKEN.match(token)
    if not match:
        raise ValueError(f"{token!r} is not a Whisper language token")
    return match.group(1)


class WhisperRecognizer:
    """SpeechRecognizer over WhisperForConditionalGeneration + WhisperProcessor."""

    def __init__(
        self,
        source: str,
        device: str = "auto",
        no_speech_threshold: float = 0.6,
        max_windows: int | None = None,
        batch_size: int = 4,
    ) -> None:
        from transformers import WhisperForConditionalGeneration

        self.src = resolve_source(ROLE, source)
        loaded = load_transformers_model(
            ROLE, self.src, WhisperForConditionalGeneration, ("whisper",), "Whisper", device
        )
        config, self.processor, self.model = loaded.config, loaded.processor, loaded.model
        self.device, self.dtype = loaded.device, loaded.dtype
        fe = self.processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.window = int(fe.n_samples)
        self.no_speech_threshold = float(no_speech_threshold)
        self.max_windows = max_windows
        self.batch_size = max(1, int(batch_size))
        gen = self.model.generation_config
        lang_to_id: dict[str, int] = dict(getattr(gen, "lang_to_id", None) or {})
        self.multilingual = bool(getattr(gen, "is_multilingual", bool(lang_to_id))) and bool(lang_to_id)
        self._lang_tokens = sorted(lang_to_id, key=lang_to_id.__getitem__)
        self._lang_ids = torch.tensor([lang_to_id[t] for t in self._lang_tokens], dtype=torch.long)
        self._sot = int(
            gen.decoder_start_token_id
            if gen.decoder_start_token_id is not None
            else config.decoder_start_token_id
        )
        self._no_speech_id = self._find_no_speech_id()
        self.info = EncoderInfo(
            modality="speech",
            model=self.src.name,
            dim=0,
            version=ADAPTER_VERSION,
            device=self.device,
            extra={
                "family": "whisper",
                "revision": self.src.revision,
                "languages": str(len(self._lang_tokens)) if self.multilingual else "en",
            },
        )

    def _find_no_speech_id(self) -> int | None:
        tok = self.processor.tokenizer
        for name in ("<|nospeech|>", "<|nocaptions|>"):
            tid = tok.convert_tokens_to_ids(name)
            if isinstance(tid, int) and tid != tok.unk_token_id:
                return tid
        no_ts = getattr(self.model.generation_config, "no_timestamps_token_id", None)
        return int(no_ts) - 1 if no_ts is not None else None

    def _windows(self, wave: np.ndarray) -> list[np.ndarray]:
        pieces = [wave[s : s + self.window] for s in range(0, wave.size, self.window)]
        if self.max_windows is not None and len(pieces) > self.max_windows:
            pieces = pieces[: max(1, int(self.max_windows))]
        return pieces

    def _features(self, pieces: list[np.ndarray]) -> torch.Tensor:
        fe = self.processor.feature_extractor
        feats = fe(pieces, sampling_rate=self.sample_rate, return_tensors="pt").input_features
        return feats.to(self.device, self.dtype)

    @torch.inference_mode()
    def _first_step(self, feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Per window: p(no speech) and the distribution over language tokens, from one decoder step."""
        start = torch.full((feats.shape[0], 1), self._sot, dtype=torch.long, device=self.device)
        logits = self.model(input_features=feats, decoder_input_ids=start).logits[:, 0, :].float().cpu()
        probs = torch.softmax(logits, dim=-1)
        n = feats.shape[0]
        no_speech = probs[:, self._no_speech_id].numpy() if self._no_speech_id is not None else np.zeros(n)
        if self.multilingual:
            lang = torch.softmax(logits[:, self._lang_ids], dim=-1).numpy()
        else:
            lang = np.ones((n, 1), dtype=np.float64)
        return np.asarray(no_speech, dtype=np.float64), np.asarray(lang, dtype=np.float64)

    @torch.inference_mode()
    def _decode(self, feats: torch.Tensor, lang_token: str | None) -> list[str]:
        kwargs: dict[str, object] = {}
        if lang_token is not None:
            kwargs = {"language": lang_token, "task": "transcribe"}
        ids = self.model.generate(input_features=feats, **kwargs)
        if not isinstance(ids, torch.Tensor):
            ids = ids.sequences
        return [t.strip() for t in self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def detect_language(self, waveform: np.ndarray) -> tuple[str | None, float, float]:
        """(language code, its probability, lowest per-window no-speech probability) without decoding text."""
        wave = check_waveform(waveform, "waveform")
        _, code, prob, no_speech = self._detect(wave)
        return code, prob, no_speech

    def _detect(self, wave: np.ndarray) -> tuple[torch.Tensor, str | None, float, float]:
        feats = self._features(self._windows(wave))
        steps = [
            self._first_step(feats[s : s + self.batch_size])
            for s in range(0, feats.shape[0], self.batch_size)
        ]
        no_speech = np.concatenate([ns for ns, _ in steps])
        lang = np.concatenate([lp for _, lp in steps])
        weights = np.clip(1.0 - no_speech, 1e-6, None)  # windows that sound like speech decide the language
        mix = (weights[:, None] * lang).sum(axis=0) / weights.sum()
        best = int(np.argmax(mix))
        code = language_code(self._lang_tokens[best]) if self.multilingual else "en"
        return feats, code, float(mix[best]), float(no_speech.min())

    def transcribe(self, waveform: np.ndarray) -> Transcript:
        """Mono float32 at ``sample_rate`` -> text, language (ISO 639-1) and whether anything was said."""
        wave = check_waveform(waveform, "waveform")
        feats, code, prob, no_speech = self._detect(wave)
        lang_token = f"<|{code}|>" if self.multilingual else None
        texts: list[str] = []
        for s in range(0, feats.shape[0], self.batch_size):
            texts.extend(self._decode(feats[s : s + self.batch_size], lang_token))
        text = " ".join(t for t in texts if t)
        if not text or no_speech >= self.no_speech_threshold:
            return Transcript(text="", language=None, language_probability=0.0, has_speech=False)
        return Transcript(text=text, language=code, language_probability=prob, has_speech=True)
