"""Turning per-item numpy vectors into the padded tensors and masks the fusion network takes.

Validation lives here so that a bad item is reported by position and modality before any model runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmrec.errors import MmrecError
from mmrec.fusion.model import SET_MODALITY


class FusionInputError(MmrecError, ValueError):
    """An item's vectors cannot be fused; the message names the item position, modality and reason."""


def check_item(index: int, item: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, np.ndarray]:
    """Return the item's present modalities as float32 (n, d) arrays, or raise FusionInputError."""
    out: dict[str, np.ndarray] = {}
    for modality, value in item.items():
        if modality not in dims:
            raise FusionInputError(
                f"item {index}: unknown modality {modality!r}; expected one of {sorted(dims)}"
            )
        if value is None:
            continue
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != dims[modality]:
            raise FusionInputError(
                f"item {index}: modality {modality!r} has shape {tuple(np.shape(value))}, "
                f"expected (n, {dims[modality]})"
            )
        if arr.shape[0] == 0:
            continue  # no vector: treated as absent
        if modality != SET_MODALITY and arr.shape[0] != 1:
            raise FusionInputError(
                f"item {index}: modality {modality!r} has {arr.shape[0]} vectors; only {SET_MODALITY!r} is a set"
            )
        if not np.all(np.isfinite(arr)):
            raise FusionInputError(f"item {index}: modality {modality!r} contains NaN or infinite values")
        out[modality] = arr
    if not out:
        raise FusionInputError(f"item {index}: no modality vector present; nothing to fuse")
    return out


def collate(
    items: Sequence[dict[str, np.ndarray]], dims: dict[str, int], device: str | torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Pad a batch of checked items: frames to (B, n_max, d) + (B, n_max) mask, others to (B, d) + (B,) mask."""
    batch = len(items)
    inputs: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for modality, d in dims.items():
        if not any(modality in it for it in items):
            continue
        if modality == SET_MODALITY:
            n_max = max(it[modality].shape[0] for it in items if modality in it)
            data = np.zeros((batch, n_max, d), dtype=np.float32)
            mask = np.zeros((batch, n_max), dtype=bool)
            for i, it in enumerate(items):
                if modality in it:
                    n = it[modality].shape[0]
                    data[i, :n] = it[modality]
                    mask[i, :n] = True
        else:
            data = np.zeros((batch, d), dtype=np.float32)
            mask = np.zeros(batch, dtype=bool)
            for i, it in enumerate(items):
                if modality in it:
                    data[i] = it[modality][0]
                    mask[i] = True
        inputs[modality] = torch.from_numpy(data).to(device)
        masks[modality] = torch.from_numpy(mask).to(device)
    return inputs, masks
