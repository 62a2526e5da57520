"""Numpy-in, numpy-out fusion with batching, query building, per-modality contributions and checkpoints."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mmrec.fusion.batching import FusionInputError, check_item, collate
from mmrec.fusion.model import AttentionFusion, ordered_modalities

DEFAULT_VERSION = "default"
_FORMAT = 1


def pick_device(requested: str = "auto") -> str:
    """``auto`` -> CUDA when torch sees a GPU, else CPU (core code may not import encoders.device)."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but torch sees no CUDA GPU; use cpu or auto")
    return requested


class Fusion:
    """An :class:`AttentionFusion` network plus everything callers need around it.

    ``version`` is ``"default"`` for the untrained network and ``"<timestamp>-<hash>"`` for a trained one,
    so a library can record which fusion produced its vectors.
    """

    def __init__(
        self,
        dims: dict[str, int],
        model: AttentionFusion | None = None,
        version: str = DEFAULT_VERSION,
        device: str = "auto",
        batch_size: int = 256,
    ) -> None:
        self.device = pick_device(device)
        self.model = (model or AttentionFusion(dims)).to(self.device).eval()
        self.modalities = list(self.model.modalities)
        self.dims = dict(self.model.dims)
        self.version = version
        self.batch_size = batch_size
        self.slices: dict[str, slice] = {}
        start = 0
        for m in self.modalities:
            self.slices[m] = slice(start, start + self.dims[m])
            start += self.dims[m]

    @property
    def dim(self) -> int:
        return self.model.dim

    def fuse(self, items: Sequence[dict[str, np.ndarray]]) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Items (modality -> (n, d) array of present modalities) -> ((B, D) float32 unit rows, weights)."""
        checked = [check_item(i, it, self.dims) for i, it in enumerate(items)]
        out = np.zeros((len(checked), self.dim), dtype=np.float32)
        weights: list[dict[str, float]] = []
        for start in range(0, len(checked), self.batch_size):
            chunk = checked[start : start + self.batch_size]
            inputs, masks = collate(chunk, self.dims, self.device)
            with torch.no_grad():
                fused, w = self.model(inputs, masks)
            out[start : start + len(chunk)] = fused.float().cpu().numpy()
            w_np = w.float().cpu().numpy()
            for row, it in zip(w_np, chunk, strict=True):
                weights.append({m: float(row[j]) for j, m in enumerate(self.modalities) if m in it})
        return out, weights

    def query_vector(
        self, blocks: dict[str, np.ndarray], weights: dict[str, float] | None = None
    ) -> np.ndarray:
        """A unit query in the fused space from per-block query vectors (e.g. a text query in text/tags/vtags).

        Each block goes through the same adapter as items; blocks are weighted by ``weights``
        (renormalised to sum to 1, default uniform over the given blocks).
        """
        if not blocks:
            raise FusionInputError("query_vector needs at least one block")
        vecs = check_item(
            0, {m: np.asarray(v, dtype=np.float32).reshape(1, -1) for m, v in blocks.items()}, self.dims
        )
        given = [m for m in self.modalities if m in vecs]
        if weights is None:
            w = {m: 1.0 / len(given) for m in given}
        else:
            missing = sorted(set(given) - set(weights))
            bad = {m: v for m, v in weights.items() if m in given and not (v >= 0 and np.isfinite(v))}
            if missing or bad:
                raise FusionInputError(f"query weights: missing {missing}, invalid {bad}")
            total = sum(weights[m] for m in given)
            if total <= 0:
                raise FusionInputError("query weights sum to 0")
            w = {m: weights[m] / total for m in given}
        q = np.zeros(self.dim, dtype=np.float32)
        with torch.no_grad():
            for m in given:
                x = torch.from_numpy(vecs[m].mean(axis=0, keepdims=True)).to(self.device)
                x = torch.nn.functional.normalize(x, dim=-1)
                q[self.slices[m]] = self.model.adapt(m, x)[0].float().cpu().numpy() * np.sqrt(w[m])
        return q / max(float(np.linalg.norm(q)), 1e-12)

    def contributions(self, query: np.ndarray, items: np.ndarray) -> list[dict[str, float]]:
        """Per-modality share of each item's score: block inner products, which sum to the score.

        For fused vectors each term equals ``sqrt(w_q w_item) * cos_m`` (weight x cosine).
        """
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        x = np.atleast_2d(np.asarray(items, dtype=np.float32))
        if q.shape[0] != self.dim or x.shape[1] != self.dim:
            raise FusionInputError(
                f"contributions: expected vectors of dim {self.dim}, got {q.shape} and {x.shape}"
            )
        out: list[dict[str, float]] = [{} for _ in range(x.shape[0])]
        for m, sl in self.slices.items():
            if not np.any(q[sl]):
                continue
            part = x[:, sl] @ q[sl]
            for i, value in enumerate(part):
                if np.any(x[i, sl]):
                    out[i][m] = float(value)
        return out

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (temp file + rename) so a crash never leaves half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": _FORMAT,
            "dims": self.dims,
            "hidden": self.model.hidden,
            "version": self.version,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        }
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Fusion:
        """Read a checkpoint written by :meth:`save`; a bad file raises FusionInputError naming it."""
        path = Path(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("format") != _FORMAT:
                raise ValueError(f"unsupported checkpoint format {payload.get('format')!r}")
            dims = {str(k): int(v) for k, v in payload["dims"].items()}
            model = AttentionFusion(dims, hidden=int(payload["hidden"]))
            model.load_state_dict(payload["state_dict"])
        except FileNotFoundError:
            raise
        except Exception as exc:  # corrupt or foreign file
            raise FusionInputError(f"{path}: not a fusion checkpoint ({exc})") from exc
        return cls(dims, model=model, version=str(payload["version"]), device=device)

    def state_hash(self) -> str:
        """A short content hash of the weights, used in trained versions."""
        buf = io.BytesIO()
        for k, v in sorted(self.model.state_dict().items()):
            buf.write(k.encode())
            buf.write(v.detach().cpu().contiguous().numpy().tobytes())
        return hashlib.sha1(buf.getvalue()).hexdigest()[:10]


def trained_version(fusion: Fusion) -> str:
    """``<UTC timestamp>-<weights hash>``: sortable, and unique for different weights."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{fusion.state_hash()}"


__all__ = [
    "DEFAULT_VERSION",
    "Fusion",
    "FusionInputError",
    "ordered_modalities",
    "pick_device",
    "trained_version",
]
