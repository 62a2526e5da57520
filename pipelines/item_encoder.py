"""Turn a batch of decoded items into per-modality vectors, one model call per modality per batch.

Batching across items is where a GPU earns its keep: every frame of the batch goes through the
frame encoder in one call (then is split back per item), every clip through the sound encoder in
one call, and every text (titles, user tags, visual tags, transcripts) through the text encoder in
one call. A modality an item lacks is simply absent from its dict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.discover import ItemMeta

VTAG_TOP_K = 5
TAG_FRAME_K = 5


@dataclass
class EncodeInput:
    """One item of a batch: its metadata and its decoded media (None for text-only items)."""

    meta: ItemMeta
    media: Any | None = None  # encoders.media.DecodedMedia


@dataclass
class EncodedVectors:
    """Per-modality (n, d) float32 vectors plus what was learnt on the way (tags, transcript)."""

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def item_frames(media: Any | None) -> list[np.ndarray]:
    """The RGB frames of an item: sampled video frames, or the image as a single frame."""
    if media is None:
        return []
    sample = getattr(media, "frames", None)
    if sample is not None and getattr(sample, "frames", None):
        return list(sample.frames)
    image = getattr(media, "image", None)
    return [image] if image is not None else []


def item_clip(media: Any | None, rate: int) -> np.ndarray | None:
    """The mono waveform decoded at ``rate``, or None when the item has no (usable) audio."""
    audio = getattr(media, "audio", None) or {}
    clip = audio.get(rate)
    if clip is None or clip.waveform is None or len(clip.waveform) == 0:
        return None
    return np.asarray(clip.waveform, dtype=np.float32)


def aggregate_tags(per_frame: Sequence[Sequence[Any]], top_k: int = VTAG_TOP_K) -> list[tuple[str, float]]:
    """Mean score of each label over all frames (a label seen once in 16 frames counts little)."""
    if not per_frame:
        return []
    totals: dict[str, float] = defaultdict(float)
    for tags in per_frame:
        for tag in tags:
            totals[tag.label] += float(tag.score)
    ranked = sorted(((lbl, s / len(per_frame)) for lbl, s in totals.items()), key=lambda t: (-t[1], t[0]))
    return [(lbl, round(s, 4)) for lbl, s in ranked[:top_k]]


def vtags_text(tags: Sequence[tuple[str, float]]) -> str:
    return "visual tags: " + ", ".join(lbl for lbl, _ in tags)


def encode_batch(batch: Sequence[EncodeInput], models: Any, speech: bool = True) -> list[EncodedVectors]:
    """Encode a batch with a :class:`encoders.registry.ModelSet`; see the module doc for the batching."""
    out = [EncodedVectors() for _ in batch]
    texts: list[tuple[int, str, str]] = []  # (item index, modality, text)
    _encode_frames(batch, models, out, texts)
    _encode_audio(batch, models, out)
    if speech and getattr(models, "speech", None) is not None:
        _transcribe(batch, models, out, texts)
    for i, item in enumerate(batch):
        body = "\n".join(t for t in (item.meta.title, item.meta.description) if t)
        if body:
            texts.append((i, "text", body))
        if item.meta.tags:
            texts.append((i, "tags", "tags: " + ", ".join(item.meta.tags)))
        if item.meta.title:
            out[i].metadata["title"] = item.meta.title
    if texts and getattr(models, "text", None) is not None:
        vecs = np.asarray(models.text.encode_text([t for _, _, t in texts], role="passage"), dtype=np.float32)
        for (i, modality, _), row in zip(texts, vecs, strict=True):
            out[i].vectors[modality] = row[None, :]
    return out


def _encode_frames(
    batch: Sequence[EncodeInput], models: Any, out: list[EncodedVectors], texts: list[tuple[int, str, str]]
) -> None:
    encoder = getattr(models, "frames", None)
    per_item = [item_frames(item.media) for item in batch]
    flat = [f for frames in per_item for f in frames]
    if encoder is None or not flat:
        return
    vecs, tags = encoder.encode_and_tag(flat, top_k=TAG_FRAME_K)
    vecs = np.asarray(vecs, dtype=np.float32)
    start = 0
    for i, frames in enumerate(per_item):
        n = len(frames)
        if n == 0:
            continue
        out[i].vectors["frames"] = vecs[start : start + n]
        top = aggregate_tags(tags[start : start + n])
        if top:
            out[i].metadata["visual_tags"] = [[lbl, s] for lbl, s in top]
            texts.append((i, "vtags", vtags_text(top)))
        start += n


def _encode_audio(batch: Sequence[EncodeInput], models: Any, out: list[EncodedVectors]) -> None:
    encoder = getattr(models, "audio", None)
    if encoder is None:
        return
    clips = [(i, item_clip(item.media, encoder.sample_rate)) for i, item in enumerate(batch)]
    present = [(i, c) for i, c in clips if c is not None]
    if not present:
        return
    vecs = np.asarray(encoder.encode_audio([c for _, c in present]), dtype=np.float32)
    for (i, _), row in zip(present, vecs, strict=True):
        out[i].vectors["audio"] = row[None, :]


def _transcribe(
    batch: Sequence[EncodeInput], models: Any, out: list[EncodedVectors], texts: list[tuple[int, str, str]]
) -> None:
    recognizer = models.speech
    for i, item in enumerate(batch):
        clip = item_clip(item.media, recognizer.sample_rate)
        if clip is None:
            continue
        result = recognizer.transcribe(clip)
        out[i].metadata["has_speech"] = bool(result.has_speech)
        gate = getattr(result, "gate", None)
        if gate is not None:  # kept or dropped, why, and the signals: shown by inspect / item pages
            out[i].metadata["speech_gate"] = gate.to_dict()
        if result.has_speech and result.text.strip():
            out[i].metadata["transcript"] = result.text.strip()
            out[i].metadata["language"] = result.language
            out[i].metadata["language_probability"] = round(float(result.language_probability), 4)
            texts.append((i, "speech", result.text.strip()))
