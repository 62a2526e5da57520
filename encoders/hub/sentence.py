"""Text embeddings from any sentence-transformers model (hub id or folder).

Roles follow the model's own configured prompts: E5-style models save ``{"query": "query: ",
"passage": "passage: "}`` in their config and get the right prefix per role; models without
those prompt names embed text as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from encoders.base import EncoderInfo, TextRole, l2_normalize
from encoders.hub.common import ADAPTER_VERSION, check_role, check_texts, load_part, pick_device
from encoders.hub.source import resolve_source

ROLE = "text"


class SentenceTextEncoder:
    """TextEncoder over SentenceTransformer; vectors are re-normalised here whatever the model's last module."""

    def __init__(self, source: str, device: str = "auto", batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.src = resolve_source(ROLE, source)
        self.device, dtype = pick_device(device)
        folder = str(self.src.folder)
        model = load_part(
            ROLE,
            self.src,
            "sentence-transformers model",
            lambda: SentenceTransformer(folder, device=self.device, local_files_only=True),
        )
        if self.device.startswith("cuda"):
            model = model.to(dtype)
        self._model = model.eval()
        self.batch_size = max(1, int(batch_size))
        prompts = dict(getattr(model, "prompts", {}) or {})
        self.prompt_names: dict[str, str | None] = {
            role: role if prompts.get(role) else None for role in ("query", "passage")
        }
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if not dim:
            dim = int(np.asarray(model.encode([""], convert_to_numpy=True)).shape[1])
        self.info = EncoderInfo(
            modality="text",
            model=self.src.name,
            dim=int(dim),
            version=ADAPTER_VERSION,
            device=self.device,
            extra={
                "family": "sentence-transformers",
                "revision": self.src.revision,
                "roles": "/".join(f"{r}={prompts[r]!r}" for r in ("query", "passage") if prompts.get(r))
                or "none",
            },
        )

    def encode_text(self, texts: Sequence[str], role: TextRole = "passage") -> np.ndarray:
        """Texts -> (N, dim) float32 unit rows; the role's prompt is prepended when the model defines one."""
        check_role(role)
        items = check_texts(texts)
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        out = self._model.encode(
            items,
            prompt_name=self.prompt_names[role],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return l2_normalize(np.asarray(out, dtype=np.float32).reshape(len(items), -1))
