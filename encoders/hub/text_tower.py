"""The text side of an already loaded two-tower model (CLIP, SigLIP, CLAP) as a CrossModalTextTower."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from encoders.base import TextRole
from encoders.hub.common import batches, check_role, check_texts, to_unit_rows


class SharedTextTower:
    """Text into another modality's space, sharing the loaded model (no second copy in memory).

    ``model`` needs ``text_features(list[str]) -> Tensor`` and ``info(role) -> EncoderInfo``.
    Query and passage roles are the same for these models.
    """

    def __init__(self, model: Any, target_modality: str, role: str, batch_size: int = 64) -> None:
        self._m = model
        self.target_modality = target_modality
        self.batch_size = max(1, int(batch_size))
        self.info = model.info(role)

    def encode_text(self, texts: Sequence[str], role: TextRole = "query") -> np.ndarray:
        """Texts -> (N, dim) float32 unit rows in the target modality's space."""
        check_role(role)
        items = check_texts(texts)
        if not items:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        parts = [to_unit_rows(self._m.text_features(items[s])) for s in batches(len(items), self.batch_size)]
        return np.concatenate(parts)
