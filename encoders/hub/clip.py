"""CLIP and SigLIP from a hub id or folder: frame vectors, zero-shot visual tags, and the text tower.

Both families expose ``get_image_features`` / ``get_text_features`` in one shared space, so one
loaded model serves the frame encoder and its :class:`ClipTextTower`. They differ in how text
is padded (SigLIP was trained on ``max_length`` padding) and how a similarity becomes a label
score (softmax over labels for CLIP, an independent sigmoid for SigLIP).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from encoders.base import EncoderInfo, Tag
from encoders.hub.common import (
    ADAPTER_VERSION,
    batches,
    check_frames,
    check_texts,
    load_transformers_model,
    pooled,
    to_unit_rows,
)
from encoders.hub.source import resolve_source
from encoders.hub.text_tower import SharedTextTower

ROLE = "frames"
SUPPORTED = ("clip", "siglip")


class _ClipModel:
    """The loaded model + processor, shared by the frame encoder and its text tower."""

    def __init__(self, source: str, device: str) -> None:
        from transformers import AutoModel

        self.src = resolve_source(ROLE, source)
        loaded = load_transformers_model(ROLE, self.src, AutoModel, SUPPORTED, "CLIP or SigLIP", device)
        config, self.processor, self.model = loaded.config, loaded.processor, loaded.model
        self.device, self.dtype = loaded.device, loaded.dtype
        self.kind = str(config.model_type)
        self.text_max_length = int(config.text_config.max_position_embeddings)
        # Measured rather than read from config: SigLIP variants name their projection size differently.
        self.dim = int(self.text_features([""]).shape[1])

    @torch.inference_mode()
    def image_features(self, frames: list[np.ndarray]) -> torch.Tensor:
        inputs = self.processor(images=frames, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        return pooled(self.model.get_image_features(pixel_values=pixels))

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        if self.kind == "siglip":
            pad: dict[str, Any] = {"padding": "max_length", "max_length": self.text_max_length}
        else:
            pad = {"padding": True, "max_length": self.text_max_length}
        inputs = self.processor(text=texts, return_tensors="pt", truncation=True, **pad)
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        return pooled(self.model.get_text_features(**inputs))

    def label_scores(self, image: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per-label scores from unit image and label vectors, the way each family was trained."""
        scale = float(self.model.logit_scale.detach().float().exp().cpu())
        logits = scale * (image @ labels.T)
        if self.kind == "siglip":
            bias = float(self.model.logit_bias.detach().float().cpu())
            return 1.0 / (1.0 + np.exp(-(logits + bias)))
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def info(self, modality: str, extra: dict[str, str] | None = None) -> EncoderInfo:
        return EncoderInfo(
            modality=modality,
            model=self.src.name,
            dim=self.dim,
            version=ADAPTER_VERSION,
            device=self.device,
            extra={"family": self.kind, "revision": self.src.revision, **(extra or {})},
        )


class ClipFrameEncoder:
    """FrameEncoder over CLIP/SigLIP image features; tags frames zero-shot when given labels."""

    def __init__(
        self,
        source: str,
        device: str = "auto",
        labels: Sequence[str] | None = None,
        label_template: str = "a photo of {}",
        batch_size: int = 32,
    ) -> None:
        self._m = _ClipModel(source, device)
        self.batch_size = max(1, int(batch_size))
        self.label_template = label_template
        self.labels: list[str] = check_texts(labels) if labels is not None else []
        self._label_vectors: np.ndarray | None = None
        self.info = self._m.info("frames")

    def encode_frames(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 RGB frames -> (N, dim) float32 unit rows (each frame preprocessed on its own)."""
        items = check_frames(frames)
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        parts = [to_unit_rows(self._m.image_features(items[s])) for s in batches(len(items), self.batch_size)]
        return np.concatenate(parts)

    def _labels_matrix(self) -> np.ndarray:
        if self._label_vectors is None:
            prompts = [self.label_template.format(label) for label in self.labels]
            parts = [to_unit_rows(self._m.text_features(prompts[s])) for s in batches(len(prompts), 64)]
            self._label_vectors = np.concatenate(parts)
        return self._label_vectors

    def tag_frames(self, frames: Sequence[np.ndarray], top_k: int = 5) -> list[list[Tag]]:
        """Top ``top_k`` vocabulary labels per frame; an empty list per frame without a vocabulary."""
        items = check_frames(frames)
        if not self.labels or top_k <= 0:
            return [[] for _ in items]
        return self._tags(self.encode_frames(items), top_k)

    def encode_and_tag(
        self, frames: Sequence[np.ndarray], top_k: int = 5
    ) -> tuple[np.ndarray, list[list[Tag]]]:
        """Vectors and zero-shot tags from one pass of the image tower."""
        vecs = self.encode_frames(frames)
        if not self.labels or top_k <= 0:
            return vecs, [[] for _ in range(len(vecs))]
        return vecs, self._tags(vecs, top_k)

    def _tags(self, vecs: np.ndarray, top_k: int) -> list[list[Tag]]:
        if len(vecs) == 0:
            return []
        scores = self._m.label_scores(vecs, self._labels_matrix())
        k = min(top_k, len(self.labels))
        out: list[list[Tag]] = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:k]
            out.append([Tag(label=self.labels[j], score=float(row[j])) for j in order])
        return out

    def text_tower(self) -> ClipTextTower:
        """The text side of the same loaded model (no second copy in memory)."""
        return ClipTextTower(self._m)


class ClipTextTower(SharedTextTower):
    """CrossModalTextTower: text into the frame space, for text-to-video search."""

    def __init__(self, model: _ClipModel, batch_size: int = 64) -> None:
        super().__init__(model, target_modality="frames", role="frame_text", batch_size=batch_size)
