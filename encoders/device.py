"""Choosing where models run: CUDA when present, else CPU; half precision only on GPU."""

from __future__ import annotations

from typing import Literal

import torch

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(requested: str = "auto") -> str:
    """Turn ``auto|cpu|cuda`` into a concrete torch device string, failing clearly when CUDA is absent."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA GPU; use --device cpu or auto")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {requested!r}: expected auto, cpu or cuda")
    return requested


def autocast_dtype(device: str) -> torch.dtype:
    """float16 on GPU (speed, memory), float32 on CPU (where half is slow and less exact)."""
    return torch.float16 if device.startswith("cuda") else torch.float32
