"""Numpy-in, numpy-out fusion with batching, query building, per-modality contributions and checkpoints."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mmrec import modalities
from mmrec.fusion.batching import FusionInputError, check_item, collate
from mmrec.fusion.bridges import BRIDGE_SOURCES, bridges_from_spec
from mmrec.fusion.model import SET_MODALITY, AttentionFusion, ordered_modalities
from mmrec.search import BlockLayout

DEFAULT_VERSION = "default"
# What a checkpoint holds: ``centred`` is the default fusion plus the library's own per-modality means
# (no learnt part, refreshed as the library grows); ``trained`` is what ``train-fusion`` makes.
ORIGINS = ("default", "centred", "trained")
_FORMAT = 2
_READABLE_FORMATS = (1, 2)


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
    so a library can record which fusion produced its vectors. ``fills`` (item side, e.g. ``{"text":
    frames -> text bridge}``) give an item with frames but no text-ish vector an estimated ``text``
    block, so image-only items compete on equal terms with captioned ones.

    A trained fusion may also carry ``centers`` (per-modality library mean, subtracted from every input
    vector before it is normalised: e5/EfficientNet embeddings are anisotropic, all cosines sit in a
    narrow band) and ``bridges`` (text space -> frames/audio block, see :mod:`mmrec.fusion.bridges`).
    The untrained fusion has neither and is the plain block concatenation.

    ``origin`` says where the fusion came from (:data:`ORIGINS`); ``stats`` are the library statistics
    a ``centred`` fusion's centres were taken from (``{"items": n, "counts": {modality: n}, "taken":
    unix time}``), which decide when the library has grown enough to take them again.
    ``raw_query_blocks``: blocks whose *text query* vectors are compared uncentred with the centred
    items (:meth:`query_vector`): an E5 query is not drawn from the items' (passages') distribution,
    so removing the items' mean from it is not centring it (see :mod:`mmrec.fusion.centring`).
    """

    def __init__(
        self,
        dims: dict[str, int],
        model: AttentionFusion | None = None,
        version: str = DEFAULT_VERSION,
        device: str = "auto",
        batch_size: int = 256,
        bridges: torch.nn.ModuleDict | None = None,
        centers: dict[str, np.ndarray] | None = None,
        bridge_weight: float = 1.0,
        fills: torch.nn.ModuleDict | None = None,
        origin: str | None = None,
        stats: dict[str, float | dict[str, int]] | None = None,
        raw_query_blocks: tuple[str, ...] = (),
    ) -> None:
        self.device = pick_device(device)
        self.model = (model or AttentionFusion(dims)).to(self.device).eval()
        self.bridges = bridges.to(self.device).eval() if bridges is not None and len(bridges) else None
        self.centers = {m: np.asarray(c, dtype=np.float32).reshape(-1) for m, c in (centers or {}).items()}
        self.bridge_weight = float(bridge_weight)
        self.fills = fills.to(self.device).eval() if fills is not None and len(fills) else None
        self.modalities = list(self.model.modalities)
        self.dims = dict(self.model.dims)
        self.version = version
        if origin is None:
            origin = "default" if version == DEFAULT_VERSION else "trained"
        if origin not in ORIGINS:
            raise FusionInputError(f"fusion origin {origin!r}: expected one of {list(ORIGINS)}")
        self.origin = origin
        self.stats = dict(stats) if stats else None
        self.raw_query_blocks = tuple(m for m in self.modalities if m in set(raw_query_blocks))
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
        checked = [self.centre(check_item(i, it, self.dims)) for i, it in enumerate(items)]
        out = np.zeros((len(checked), self.dim), dtype=np.float32)
        weights: list[dict[str, float]] = []
        for start in range(0, len(checked), self.batch_size):
            chunk = self.fill_missing(checked[start : start + self.batch_size])
            inputs, masks = collate(chunk, self.dims, self.device)
            with torch.no_grad():
                fused, w = self.model(inputs, masks)
            out[start : start + len(chunk)] = fused.float().cpu().numpy()
            w_np = w.float().cpu().numpy()
            for row, it in zip(w_np, chunk, strict=True):
                weights.append({m: float(row[j]) for j, m in enumerate(self.modalities) if m in it})
        return out, weights

    def centre(self, item: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Subtract the stored library mean of each modality (no-op for an untrained fusion)."""
        if not self.centers:
            return item
        return {m: v - self.centers[m] if m in self.centers else v for m, v in item.items()}

    def fill_missing(self, items: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Centred items with frames and no text-ish vector get each fill's estimated block."""
        if self.fills is None:
            return items
        needy = [
            i for i, it in enumerate(items) if SET_MODALITY in it and not any(m in it for m in BRIDGE_SOURCES)
        ]
        if not needy:
            return items
        out = list(items)
        blocks = model_blocks(self.model, SET_MODALITY, [items[i][SET_MODALITY] for i in needy], self.device)
        with torch.no_grad():
            for target, fill in self.fills.items():
                est = fill(blocks).float().cpu().numpy()
                for row, i in zip(est, needy, strict=True):
                    out[i] = {**out[i], target: row[None, :]}
        return out

    def bridge_blocks(
        self, blocks: dict[str, np.ndarray], bridge_input: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Frames/audio query blocks made from the query's text vector by the bridges.

        Only for blocks the caller did not give (a real text tower, e.g. CLIP, wins) and only when the
        query has a text-ish block to start from. ``bridge_input`` replaces that block's vector as
        the bridges' input (e.g. a language-neutral version of the query; the text blocks keep theirs).
        """
        if self.bridges is None:
            return {}
        source = next((m for m in modalities.bridge_inputs() if m in blocks), None)
        if source is None:
            return {}
        raw = blocks[source] if bridge_input is None else bridge_input
        x = np.asarray(raw, dtype=np.float32).reshape(1, -1)
        if x.shape[1] != self.dims[source]:
            raise FusionInputError(f"bridge_input: expected {self.dims[source]} values, got {x.shape[1]}")
        x = self.centre({source: x})[source]
        out: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for target, bridge in self.bridges.items():
                if target in self.dims and target not in blocks:
                    t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
                    out[target] = bridge(t)[0].float().cpu().numpy()
        return out

    def query_vector(
        self,
        blocks: dict[str, np.ndarray],
        weights: dict[str, float] | None = None,
        bridge_input: np.ndarray | None = None,
    ) -> np.ndarray:
        """A unit query in the fused space from per-block query vectors (e.g. a text query in text/tags/vtags).

        Each block goes through the same centring (except ``raw_query_blocks``) and adapter as items; blocks are weighted by ``weights``
        (renormalised to sum to 1, default uniform over the given blocks). With bridges, missing
        frames/audio blocks are filled from the text vector and weighted like one text block times
        ``bridge_weight`` (default 1: a bridged block counts as much as one text block);
        ``bridge_input`` is what the bridges read instead of the text block (see ``bridge_blocks``).
        """
        if not blocks:
            raise FusionInputError("query_vector needs at least one block")
        vecs = check_item(
            0, {m: np.asarray(v, dtype=np.float32).reshape(1, -1) for m, v in blocks.items()}, self.dims
        )
        bridged = self.bridge_blocks(vecs, bridge_input)
        vecs = {m: v if m in self.raw_query_blocks else self.centre({m: v})[m] for m, v in vecs.items()}
        given = [m for m in self.modalities if m in vecs]
        if weights is None:
            w = {m: 1.0 for m in given}
        else:
            missing = sorted(set(given) - set(weights))
            bad = {m: v for m, v in weights.items() if m in given and not (v >= 0 and np.isfinite(v))}
            if missing or bad:
                raise FusionInputError(f"query weights: missing {missing}, invalid {bad}")
            w = {m: float(weights[m]) for m in given}
        if bridged:
            text_w = [w[m] for m in given if m not in self.bridges_targets()] or [1.0]
            for m in bridged:
                w[m] = (
                    float(weights[m])
                    if weights and m in weights
                    else self.bridge_weight * float(np.mean(text_w))
                )
        total = sum(w.values())
        if total <= 0:
            raise FusionInputError("query weights sum to 0")
        w = {m: v / total for m, v in w.items()}
        q = np.zeros(self.dim, dtype=np.float32)
        with torch.no_grad():
            for m in given:
                x = torch.from_numpy(vecs[m].mean(axis=0, keepdims=True)).to(self.device)
                x = torch.nn.functional.normalize(x, dim=-1)
                q[self.slices[m]] = self.model.adapt(m, x)[0].float().cpu().numpy() * np.sqrt(w[m])
        for m, v in bridged.items():
            q[self.slices[m]] = v * np.sqrt(w[m])
        return q / max(float(np.linalg.norm(q)), 1e-12)

    def bridges_targets(self) -> list[str]:
        """Blocks this fusion can fill from a text query."""
        return list(self.bridges.keys()) if self.bridges is not None else []

    def contributions(self, query: np.ndarray, items: np.ndarray) -> list[dict[str, float]]:
        """Per-modality share of each item's score: block inner products, which sum to the score.

        For fused vectors each term equals ``sqrt(w_q w_item) * cos_m`` (weight x cosine). The
        arithmetic is ``mmrec.search.BlockLayout``'s (numpy only, for readers that never load torch).
        """
        try:
            return BlockLayout(self.dims).contributions(query, items)
        except ValueError as exc:
            raise FusionInputError(str(exc)) from exc

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
            "centers": {m: torch.from_numpy(c.copy()) for m, c in self.centers.items()},
            "bridge_weight": self.bridge_weight,
            "bridges": _modules_payload(self.bridges),
            "fills": _modules_payload(self.fills),
            "origin": self.origin,
            "stats": self.stats,
            "raw_query_blocks": list(self.raw_query_blocks),
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
            if payload.get("format") not in _READABLE_FORMATS:
                raise ValueError(f"unsupported checkpoint format {payload.get('format')!r}")
            dims = {str(k): int(v) for k, v in payload["dims"].items()}
            model = AttentionFusion(dims, hidden=int(payload["hidden"]))
            model.load_state_dict(payload["state_dict"])
            centers = {str(m): c.numpy() for m, c in (payload.get("centers") or {}).items()}
            bridges = _modules_from_payload(payload.get("bridges"))
            fills = _modules_from_payload(payload.get("fills"))
            bridge_weight = float(payload.get("bridge_weight", 1.0))
            origin = payload.get("origin")  # absent: written by train-fusion before centred fusions
            stats = payload.get("stats")
            raw_query_blocks = tuple(str(m) for m in payload.get("raw_query_blocks") or ())
        except FileNotFoundError:
            raise
        except Exception as exc:  # corrupt or foreign file
            raise FusionInputError(f"{path}: not a fusion checkpoint ({_load_failure(exc)})") from exc
        return cls(
            dims,
            model=model,
            version=str(payload["version"]),
            device=device,
            bridges=bridges,
            centers=centers,
            bridge_weight=bridge_weight,
            fills=fills,
            origin=None if origin is None else str(origin),
            stats=stats,
            raw_query_blocks=raw_query_blocks,
        )

    def state_hash(self) -> str:
        """A short content hash of the weights, used in trained versions."""
        buf = io.BytesIO()
        parts = dict(self.model.state_dict())
        if self.bridges is not None:
            parts.update({f"bridges.{k}": v for k, v in self.bridges.state_dict().items()})
        if self.fills is not None:
            parts.update({f"fills.{k}": v for k, v in self.fills.state_dict().items()})
        parts.update({f"centers.{m}": torch.from_numpy(c) for m, c in self.centers.items()})
        for k, v in sorted(parts.items()):
            buf.write(k.encode())
            buf.write(v.detach().cpu().contiguous().numpy().tobytes())
        buf.write(repr(self.bridge_weight).encode())
        if self.stats:  # older checkpoints have none, so their hashes are unchanged
            extra = {
                "origin": self.origin,
                "stats": self.stats,
                "raw_query_blocks": list(self.raw_query_blocks),
            }
            buf.write(json.dumps(extra, sort_keys=True).encode())
        return hashlib.sha1(buf.getvalue()).hexdigest()[:10]


def model_blocks(
    model: AttentionFusion, modality: str, arrays: list[np.ndarray], device: str
) -> torch.Tensor:
    """Items' blocks of one modality exactly as fusion computes them (pooling + adapter), no gradient."""
    with torch.no_grad():
        if modality == SET_MODALITY:
            n_max = max(a.shape[0] for a in arrays)
            data = np.zeros((len(arrays), n_max, arrays[0].shape[1]), dtype=np.float32)
            mask = np.zeros((len(arrays), n_max), dtype=bool)
            for i, a in enumerate(arrays):
                data[i, : a.shape[0]], mask[i, : a.shape[0]] = a, True
            assert model.frame_pool is not None
            pooled = model.frame_pool(torch.from_numpy(data).to(device), torch.from_numpy(mask).to(device))
        else:
            rows = np.stack([a[0] for a in arrays]).astype(np.float32)
            pooled = torch.nn.functional.normalize(torch.from_numpy(rows).to(device), dim=-1)
        return model.adapt(modality, pooled)


def _modules_payload(modules: torch.nn.ModuleDict | None) -> dict | None:
    if modules is None:
        return None
    return {
        "spec": {t: b.spec() for t, b in modules.items()},
        "state_dict": {k: v.detach().cpu() for k, v in modules.state_dict().items()},
    }


def _modules_from_payload(payload: dict | None) -> torch.nn.ModuleDict | None:
    if not payload:
        return None
    modules = bridges_from_spec(payload["spec"])
    modules.load_state_dict(payload["state_dict"])
    return modules


def trained_version(fusion: Fusion) -> str:
    """``<UTC timestamp>-<weights hash>``: sortable, and unique for different weights."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{fusion.state_hash()}"


__all__ = [
    "DEFAULT_VERSION",
    "ORIGINS",
    "Fusion",
    "FusionInputError",
    "ordered_modalities",
    "pick_device",
    "trained_version",
]


def _load_failure(exc: Exception) -> str:
    """One short reason: torch's weights-only refusal is a page of advice that does not apply here
    (we never unpickle arbitrary objects), so say what it means instead."""
    text = str(exc)
    if "Weights only load failed" in text or type(exc).__name__ == "UnpicklingError":
        return "damaged or foreign file: torch cannot read it as a weights-only checkpoint"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]
