"""Item content vectors for evaluation: item text embedded once, cached on disk by model + texts hash.

The embedding function is injectable (``embed_texts``) so evaluation can run on any text model; the
default goes through ``encoders.registry`` (the bundled multilingual E5, passage role).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from encoders.base import l2_normalize
from mmrec.evaluate.datasets import cache_root

EmbedTexts = Callable[[list[str]], np.ndarray]


def registry_embedder(profile: str = "bundled") -> tuple[EmbedTexts, str]:
    """The library's text encoder as ``(embed_texts, model_key)``; the model loads on first use."""
    from encoders.registry import load_models

    models = load_models(profile)
    text = models.text

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(text.encode_text(texts, role="passage"), dtype=np.float32)

    return embed, text.info.key()


def embed_items(
    documents: Sequence[str],
    embed_texts: EmbedTexts | None = None,
    model_key: str | None = None,
    cache_dir: Path | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """(n_items, d) L2-normalised float32 vectors of ``documents``, from the disk cache when present.

    With a custom ``embed_texts`` pass a ``model_key`` naming the model, or nothing is cached (a
    wrong cache hit would silently mix models).
    """
    if embed_texts is None:
        embed_texts, model_key = registry_embedder()
    docs = [str(d) for d in documents]
    path = None
    if model_key:
        digest = hashlib.sha256(("\x1f".join([model_key, *docs])).encode("utf-8")).hexdigest()[:24]
        path = (cache_dir or cache_root() / "embeddings") / f"{digest}.npy"
        if path.exists():
            cached = np.load(path)
            if cached.shape[0] == len(docs):
                return cached
    parts = [
        np.asarray(embed_texts(docs[i : i + batch_size]), dtype=np.float32)
        for i in range(0, len(docs), batch_size)
    ]
    vectors = l2_normalize(np.concatenate(parts) if parts else np.zeros((0, 1), np.float32))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    return vectors
