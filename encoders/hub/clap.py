"""CLAP from a hub id or folder: one sound vector per clip, plus the text tower into the same space.

CLAP sees at most ``max_length_s`` seconds (10 s for the LAION models) and its feature extractor
crops longer input at random. To stay deterministic and cover a whole track, long waveforms are
cut here into consecutive windows of that length (at most ``max_windows``, spread evenly), each
window is embedded, and the unit vectors are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from encoders.base import EncoderInfo, l2_normalize
from encoders.hub.common import (
    ADAPTER_VERSION,
    batches,
    check_waveform,
    load_transformers_model,
    pooled,
    to_unit_rows,
)
from encoders.hub.source import resolve_source
from encoders.hub.text_tower import SharedTextTower

ROLE = "audio"


class _ClapModel:
    """The loaded model + processor, shared by the audio encoder and its text tower."""

    def __init__(self, source: str, device: str) -> None:
        from transformers import ClapModel

        self.src = resolve_source(ROLE, source)
        loaded = load_transformers_model(ROLE, self.src, ClapModel, ("clap",), "CLAP", device)
        config, self.processor, self.model = loaded.config, loaded.processor, loaded.model
        self.device, self.dtype = loaded.device, loaded.dtype
        fe = self.processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.window = int(fe.nb_max_samples)
        self.dim = int(config.projection_dim)

    @torch.inference_mode()
    def audio_features(self, clips: list[np.ndarray]) -> torch.Tensor:
        inputs = self.processor(audio=clips, sampling_rate=self.sample_rate, return_tensors="pt")
        feats = inputs["input_features"].to(self.device, self.dtype)
        is_longer = inputs.get("is_longer")
        kwargs = {"is_longer": is_longer.to(self.device)} if is_longer is not None else {}
        return pooled(self.model.get_audio_features(input_features=feats, **kwargs))

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        inputs = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        return pooled(self.model.get_text_features(**inputs))

    def info(self, modality: str) -> EncoderInfo:
        return EncoderInfo(
            modality=modality,
            model=self.src.name,
            dim=self.dim,
            version=ADAPTER_VERSION,
            device=self.device,
            extra={"family": "clap", "revision": self.src.revision, "sample_rate": str(self.sample_rate)},
        )


def split_windows(wave: np.ndarray, window: int, max_windows: int) -> list[np.ndarray]:
    """Consecutive ``window``-sample pieces (the last may be shorter), at most ``max_windows`` spread evenly."""
    if wave.size <= window:
        return [wave]
    starts = list(range(0, wave.size, window))
    tail = wave.size - starts[-1]
    # A scrap shorter than a quarter window adds noise, not content.
    if tail < window // 4 and len(starts) > 1:
        starts.pop()
    if len(starts) > max_windows:
        pick = np.linspace(0, len(starts) - 1, max_windows).round().astype(int)
        starts = [starts[i] for i in pick]
    return [wave[s : s + window] for s in starts]


class ClapAudioEncoder:
    """AudioEncoder over CLAP's audio tower; long clips are averaged over fixed windows."""

    def __init__(self, source: str, device: str = "auto", batch_size: int = 8, max_windows: int = 6) -> None:
        self._m = _ClapModel(source, device)
        self.sample_rate = self._m.sample_rate
        self.batch_size = max(1, int(batch_size))
        self.max_windows = max(1, int(max_windows))
        self.info = self._m.info("audio")

    def encode_audio(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Mono float32 waveforms at ``sample_rate`` -> (N, dim) float32 unit rows."""
        waves = list(waveforms)
        pieces: list[np.ndarray] = []
        owner: list[int] = []
        for i, w in enumerate(waves):
            wave = check_waveform(w, f"waveforms[{i}]")
            for piece in split_windows(wave, self._m.window, self.max_windows):
                pieces.append(piece)
                owner.append(i)
        n = len(waves)
        if not pieces:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        rows = np.concatenate(
            [to_unit_rows(self._m.audio_features(pieces[s])) for s in batches(len(pieces), self.batch_size)]
        )
        idx = np.asarray(owner)
        return l2_normalize(np.stack([rows[idx == i].mean(axis=0) for i in range(n)]))

    def text_tower(self) -> ClapTextTower:
        """The text side of the same loaded model (no second copy in memory)."""
        return ClapTextTower(self._m)


class ClapTextTower(SharedTextTower):
    """CrossModalTextTower: text into CLAP's sound space, for text-to-audio search."""

    def __init__(self, model: _ClapModel, batch_size: int = 64) -> None:
        super().__init__(model, target_modality="audio", role="audio_text", batch_size=batch_size)
