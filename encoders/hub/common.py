"""Small pieces every torch hub adapter shares: dtype choice, input checks, feature extraction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from encoders.base import l2_normalize
from encoders.device import autocast_dtype, resolve_device
from encoders.hub.errors import HubModelError
from encoders.hub.source import ResolvedSource

ADAPTER_VERSION = "1"  # bump when preprocessing here changes the vectors

T = TypeVar("T")


def pick_device(device: str) -> tuple[str, torch.dtype]:
    """Concrete device plus weight dtype: half precision on CUDA, float32 on CPU."""
    dev = resolve_device(device)
    return dev, autocast_dtype(dev)


def load_part(role: str, src: ResolvedSource, what: str, loader: Callable[[], T]) -> T:
    """Run one from_pretrained call, turning any failure into a HubModelError naming role and source."""
    try:
        return loader()
    except HubModelError:
        raise
    except Exception as exc:
        raise HubModelError(
            role, src.name, f"could not load its {what} from {str(src.folder)!r}: {type(exc).__name__}: {exc}"
        ) from exc


def pooled(out: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor in older transformers and a ModelOutput (pooler_output) in 5.x."""
    if isinstance(out, torch.Tensor):
        return out
    value = getattr(out, "pooler_output", None)
    if value is None:
        value = out[0]
    return value


def to_unit_rows(x: torch.Tensor) -> np.ndarray:
    """Float32 on CPU, rows L2-normalised (half-precision GPU outputs come back as float32)."""
    return l2_normalize(x.detach().float().cpu().numpy())


def check_texts(texts: Sequence[str]) -> list[str]:
    """A list of strings, or a TypeError naming the offending index."""
    if isinstance(texts, str):
        raise TypeError("encode_text expects a sequence of strings, got a single str")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}]: expected str, got {type(t).__name__}")
    return items


def check_role(role: str) -> None:
    if role not in ("query", "passage"):
        raise ValueError(f"role: expected 'query' or 'passage', got {role!r}")


def check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """HxWx3 uint8 RGB arrays, or a ValueError naming the frame and what is wrong with it."""
    out: list[np.ndarray] = []
    for i, f in enumerate(frames):
        arr = np.asarray(f)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"frames[{i}]: expected an HxWx3 RGB array, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"frames[{i}]: expected dtype uint8, got {arr.dtype}")
        # Processors hand arrays to torch.from_numpy, which warns on read-only (e.g. PIL-backed) memory.
        out.append(np.array(arr, copy=True) if not arr.flags.writeable else np.ascontiguousarray(arr))
    return out


def check_waveform(w: np.ndarray, where: str) -> np.ndarray:
    """A finite 1-D float32 waveform, or a ValueError naming it."""
    arr = np.asarray(w, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"{where}: expected a mono 1-D waveform, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{where}: waveform is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: waveform holds NaN or infinite samples")
    return arr


def batches(n: int, size: int) -> list[slice]:
    return [slice(s, min(n, s + size)) for s in range(0, n, size)]


@dataclass
class LoadedModel:
    """A transformers model loaded for one role: config, processor, model (on device, eval)."""

    config: Any
    processor: Any
    model: Any
    device: str
    dtype: torch.dtype


def load_transformers_model(
    role: str, src: ResolvedSource, model_cls: Any, expected: tuple[str, ...], label: str, device: str
) -> LoadedModel:
    """Config, processor and weights from a local folder, checking the model type fits the role.

    Each step that fails raises ``HubModelError`` naming the role, the source and the part.
    """
    from transformers import AutoConfig, AutoProcessor

    folder = str(src.folder)
    config = load_part(role, src, "config", lambda: AutoConfig.from_pretrained(folder, local_files_only=True))
    kind = str(getattr(config, "model_type", ""))
    if kind not in expected:
        raise HubModelError(
            role, src.name, f"model type {kind!r} is not {label} (expected one of {expected})"
        )
    dev, dtype = pick_device(device)
    processor = load_part(
        role, src, "processor", lambda: AutoProcessor.from_pretrained(folder, local_files_only=True)
    )
    model = load_part(
        role, src, "weights", lambda: model_cls.from_pretrained(folder, local_files_only=True, dtype=dtype)
    )
    return LoadedModel(config, processor, model.to(dev).eval(), dev, dtype)
