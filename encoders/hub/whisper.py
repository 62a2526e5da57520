"""Whisper speech recognition from a hub id or folder (transformers), 30-second windows for long audio.

One decoder step after ``<|startoftranscript|>`` gives both numbers Whisper was trained to emit
there: the distribution over language tokens (language detection) and the probability of the
no-speech token. Both come from the same logits, so language detection costs one short forward
per window; the transcript is then decoded greedily in the detected language.

The transcript then passes the same speech gate as the bundled recogniser (``encoders.speech_gate``):
the no-speech probability comes from that first step, the mean token log-probability from one
teacher-forced pass over the decoded tokens, the compression ratio and word count from the text, and
the VAD share from faster-whisper's Silero VAD where that package is installed (else the VAD test is
skipped and the signal reads None).
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import torch

from encoders.base import EncoderInfo, SpeechSignals, Transcript
from encoders.hub.common import ADAPTER_VERSION, check_waveform, load_transformers_model
from encoders.hub.source import resolve_source
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
        no_speech_threshold: float | None = None,
        max_windows: int | None = None,
        batch_size: int = 4,
        thresholds: GateThresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        """``no_speech_threshold``, when given, replaces ``thresholds.max_no_speech_prob``."""
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
        if no_speech_threshold is not None:
            thresholds = replace(thresholds, max_no_speech_prob=float(no_speech_threshold))
        self.thresholds = thresholds
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
        self._special_ids = torch.tensor(sorted(self.processor.tokenizer.all_special_ids), dtype=torch.long)
        self._eot = int(self.processor.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        # Tokens generate() never lets the text contain: every special token but end-of-text, and the
        # config's suppress list. Scoring keeps them out too, so log-probabilities match the decode.
        never = {int(i) for i in self._special_ids.tolist() if int(i) != self._eot}
        never |= {int(i) for i in (getattr(gen, "suppress_tokens", None) or [])}
        self._suppressed = torch.tensor(
            sorted(i for i in never if 0 <= i < int(config.vocab_size)), dtype=torch.long
        )
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
                "speech_gate": GATE_VERSION,  # not in key(): a gated library opens as before
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

    @property
    def no_speech_threshold(self) -> float:
        return self.thresholds.max_no_speech_prob

    @torch.inference_mode()
    def _decode(self, feats: torch.Tensor, lang_token: str | None) -> list[tuple[str, float | None, int]]:
        """Greedy text per window, with the mean log-probability of its tokens and their count."""
        kwargs: dict[str, object] = {}
        if lang_token is not None:
            kwargs = {"language": lang_token, "task": "transcribe"}
        ids = self.model.generate(input_features=feats, **kwargs)
        if not isinstance(ids, torch.Tensor):
            ids = ids.sequences
        texts = [t.strip() for t in self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        if ids.shape[1] == 0 or int(ids[0, 0]) != self._sot:  # transformers 5 returns no prompt tokens
            prompt = torch.tensor(self._prompt(lang_token), dtype=ids.dtype, device=ids.device)
            ids = torch.cat([prompt.expand(ids.shape[0], -1), ids], dim=1)
        return [(t, lp, n) for t, (lp, n) in zip(texts, self._token_logprobs(feats, ids), strict=True)]

    def _prompt(self, lang_token: str | None) -> list[int]:
        """The decoder prompt generate() forced: <|startoftranscript|> [<|lang|> <|transcribe|>] <|notimestamps|>."""
        gen = self.model.generation_config
        prompt = [self._sot]
        if lang_token is not None:
            prompt += [int(gen.lang_to_id[lang_token]), int(gen.task_to_id["transcribe"])]
        no_ts = getattr(gen, "no_timestamps_token_id", None)
        return prompt + ([int(no_ts)] if no_ts is not None else [])

    def _token_logprobs(self, feats: torch.Tensor, ids: torch.Tensor) -> list[tuple[float | None, int]]:
        """Teacher-forced log p of each decoded text token and of the first end-of-text (Whisper's own
        average counts it too); the prompt tokens and the padding after the end are left out."""
        logits = self.model(input_features=feats, decoder_input_ids=ids[:, :-1]).logits.float()
        logits[..., self._suppressed.to(logits.device)] = float("-inf")  # as generate() did
        target = ids[:, 1:]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, target[..., None])[..., 0].cpu()
        target = target.cpu()
        is_eot = target == self._eot
        first_eot = is_eot & (torch.cumsum(is_eot.long(), dim=1) == 1)
        mask = (~torch.isin(target, self._special_ids)) | first_eot
        counts = mask.sum(dim=1)
        sums = torch.where(mask, logp, torch.zeros_like(logp)).sum(dim=1)  # prompt targets are -inf
        return [(float(s / c) if c else None, int(c)) for s, c in zip(sums, counts, strict=True)]

    def detect_language(self, waveform: np.ndarray) -> tuple[str | None, float, float]:
        """(language code, its probability, lowest per-window no-speech probability) without decoding text."""
        wave = check_waveform(waveform, "waveform")
        _, code, prob, no_speech = self._detect(wave)
        return code, prob, no_speech

    def _detect(self, wave: np.ndarray) -> tuple[torch.Tensor, str | None, float, float]:
        feats, code, prob, no_speech = self._detect_windows(wave)
        return feats, code, prob, float(no_speech.min())

    def _detect_windows(self, wave: np.ndarray) -> tuple[torch.Tensor, str | None, float, np.ndarray]:
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
        return feats, code, float(mix[best]), no_speech

    def transcribe(self, waveform: np.ndarray) -> Transcript:
        """Mono float32 at ``sample_rate`` -> text, language (ISO 639-1) and whether anything was said.

        ``transcript.gate`` says whether the speech gate kept the text, why, and with which signals.
        """
        wave = check_waveform(waveform, "waveform")
        duration = round(wave.size / self.sample_rate, 3)
        share = vad_share(wave) if self.sample_rate == 16000 else None  # Silero VAD runs at 16 kHz
        if share is not None and share < self.thresholds.min_vad_share:
            quiet = SpeechSignals(None, None, None, round(share, 4), 0, duration)
            return dropped(decide(quiet, "", self.thresholds))
        feats, code, prob, no_speech = self._detect_windows(wave)
        lang_token = f"<|{code}|>" if self.multilingual else None
        decoded: list[tuple[str, float | None, int]] = []
        for s in range(0, feats.shape[0], self.batch_size):
            decoded.extend(self._decode(feats[s : s + self.batch_size], lang_token))
        said = [(i, t, lp, n) for i, (t, lp, n) in enumerate(decoded) if t]
        text = " ".join(t for _, t, _, _ in said)
        weights = np.array([max(1, n) for *_, n in said], dtype=np.float64)
        scored = [(lp, w) for (_, _, lp, _), w in zip(said, weights, strict=True) if lp is not None]
        signals = SpeechSignals(
            no_speech_prob=token_weighted([float(no_speech[i]) for i, *_ in said], weights),
            avg_logprob=token_weighted([lp for lp, _ in scored], np.array([w for _, w in scored])),
            compression_ratio=round(compression_ratio(text), 4) if text else None,
            vad_share=None if share is None else round(share, 4),
            words=count_words(text),
            duration_s=duration,
        )
        gate = decide(signals, text, self.thresholds)
        if not gate.kept:
            return dropped(gate)
        return Transcript(text=text, language=code, language_probability=prob, has_speech=True, gate=gate)
