"""Training a library's fusion from its stored per-modality vectors (never re-running encoders).

Steps, each learned from the library itself and stored in the checkpoint:

1. ``centers``: the mean of each modality's unit vectors, subtracted before normalising (removes the
   common direction that makes every e5/EfficientNet cosine look alike);
2. the attention/adapter view contrast of :func:`mmrec.fusion.training.train_fusion` (on centred inputs);
3. ``bridges`` text -> frames (and -> audio): InfoNCE in both directions with a learnable temperature
   between an item's text-ish vector (title/description, tags or transcript, one picked at random per
   epoch: modality dropout) and its frames (a random subset of frames) or audio block (query side);
4. ``fills`` frames -> text, the same objective reversed (item side): image-only items get an estimated
   text block. On tuxpaint this lifted every metric over query-side bridges alone (see
   scripts/eval_tuxpaint.py), most of all text -> image with captioned items in the gallery.

Attention/adapter training is off by default (``attention_epochs=0``): on tuxpaint 3 epochs of view
contrast lowered both text -> image recall and same-category precision.

Items are read from the store in key chunks, so memory is bounded by the chunk size, not the library.
A seeded share of the items that have text and frames is held out and used only to report text->image
retrieval before and after training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmrec.errors import LibraryError
from mmrec.evaluate.metrics import recall_at_ranks, target_ranks
from mmrec.fusion.bridges import BRIDGE_SOURCES, BRIDGE_TARGETS, Bridge
from mmrec.fusion.fusion import Fusion, model_blocks, pick_device, trained_version
from mmrec.fusion.model import SET_MODALITY
from mmrec.fusion.training import train_fusion
from mmrec.modalities import text_blocks

Item = dict[str, np.ndarray]
QUERY_BLOCKS = text_blocks()
KS = (1, 5, 10)
MAX_EVAL_ITEMS = 2000
FILL_TARGET = "text"
BRIDGE_WEIGHTS = (1.0, 2.0, 4.0)


class VectorSource(Protocol):
    """What training reads from a library store."""

    def vectors(self, modality: str, keys: Sequence[int]) -> list[np.ndarray | None]: ...

    def items(self) -> Iterator[Any]: ...


def chunked(keys: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive slices of ``keys`` as plain int lists."""
    for start in range(0, len(keys), size):
        yield [int(k) for k in keys[start : start + size]]


def read_items(store: VectorSource, keys: Sequence[int], modalities: Sequence[str]) -> list[Item]:
    """Present modality vectors of each key (absent modalities are left out)."""
    items: list[Item] = [{} for _ in keys]
    for m in modalities:
        for item, vec in zip(items, store.vectors(m, list(keys)), strict=True):
            if vec is not None and len(vec):
                item[m] = np.asarray(vec, dtype=np.float32)
    return items


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)


def library_centers(
    store: VectorSource, keys: Sequence[int], dims: dict[str, int], chunk: int
) -> dict[str, np.ndarray]:
    """Mean of each modality's unit item vectors (frames: the unit mean of the item's frames)."""
    sums = {m: np.zeros(d, dtype=np.float64) for m, d in dims.items()}
    counts = dict.fromkeys(dims, 0)
    for part in chunked(keys, chunk):
        for item in read_items(store, part, list(dims)):
            for m, v in item.items():
                sums[m] += _unit(v.mean(axis=0))
                counts[m] += 1
    return {m: (sums[m] / counts[m]).astype(np.float32) for m in dims if counts[m] > 0}


def _source(item: Item, rng: np.random.Generator | None) -> str | None:
    present = [m for m in BRIDGE_SOURCES if m in item]
    if not present:
        return None
    return present[int(rng.integers(len(present)))] if rng is not None else present[0]


def paired_keys(
    store: VectorSource, keys: Sequence[int], dims: dict[str, int], chunk: int
) -> dict[str, list[int]]:
    """Per bridge target, the keys that have that target and at least one text-ish source."""
    out: dict[str, list[int]] = {t: [] for t in BRIDGE_TARGETS if t in dims}
    wanted = [m for m in (*out, *BRIDGE_SOURCES) if m in dims]
    for part in chunked(keys, chunk):
        for k, item in zip(part, read_items(store, part, wanted), strict=True):
            if _source(item, None) is None:
                continue
            for t in out:
                if t in item:
                    out[t].append(k)
    return out


def _subset_frames(arr: np.ndarray, rng: np.random.Generator, keep: float = 0.5) -> np.ndarray:
    if arr.shape[0] <= 1:
        return arr
    sel = rng.random(arr.shape[0]) < keep
    if not sel.any():
        sel[int(rng.integers(arr.shape[0]))] = True
    return arr[sel]


def train_bridge(
    store: VectorSource,
    fusion: Fusion,
    target: str,
    keys: Sequence[int],
    epochs: int,
    seed: int,
    hidden: int = 0,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    chunk: int = 4096,
    temperature: float = 0.05,
    fill: str | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Bridge, list[dict[str, float]]]:
    """Fit one bridge on ``keys`` (items having ``target`` and a text-ish vector) with symmetric InfoNCE.

    Query side (``fill=None``): centred text vector -> ``target`` block. Item side (``fill="text"``):
    ``target`` block -> the ``fill`` block of the item's text-ish vector (the reverse direction).
    """
    dev = fusion.device
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    src_dim = next(fusion.dims[m] for m in BRIDGE_SOURCES if m in fusion.dims)
    if fill is None:
        bridge = Bridge(src_dim, fusion.dims[target], hidden).to(dev).train()
    else:
        bridge = Bridge(fusion.dims[target], fusion.dims[fill], hidden).to(dev).train()
    log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature), device=dev))
    opt = torch.optim.AdamW([*bridge.parameters(), log_scale], lr=lr, weight_decay=weight_decay)
    modalities = [target, *[m for m in BRIDGE_SOURCES if m in fusion.dims]]
    history: list[dict[str, float]] = []
    order = np.asarray(keys, dtype=np.int64)
    for epoch in range(epochs):
        order = order[rng.permutation(len(order))]
        total, batches = 0.0, 0
        for part in chunked(order, chunk):
            items = [fusion.centre(it) for it in read_items(store, part, modalities)]
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                if len(batch) < 2:
                    continue
                srcs = [it[_source(it, rng) or BRIDGE_SOURCES[0]][0] for it in batch]
                tgts = [
                    _subset_frames(it[target], rng) if target == SET_MODALITY else it[target] for it in batch
                ]
                t = model_blocks(fusion.model, target, tgts, dev)
                if fill is None:
                    s = bridge(torch.from_numpy(np.stack(srcs)).to(dev))
                else:  # item side: the frames block predicts the text block
                    s = model_blocks(fusion.model, fill, [x[None, :] for x in srcs], dev)
                    t = bridge(t)
                logits = (s @ t.T) * log_scale.exp().clamp(max=100.0)
                labels = torch.arange(len(batch), device=dev)
                loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach())
                batches += 1
        row = {
            "epoch": epoch,
            "loss": total / max(batches, 1),
            "temperature": float(1 / log_scale.detach().exp()),
        }
        history.append(row)
        if log is not None:
            name = f"text->{target}" if fill is None else f"{target}->{fill}"
            log(f"bridge {name} epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f}")
    return bridge.eval(), history


def recall(scores: np.ndarray) -> dict[str, float]:
    """Recall@k when query i's relevant item is gallery column i; ties count against."""
    return recall_at_ranks(target_ranks(scores, np.arange(len(scores))), KS)


def text_to_image_recall(store: VectorSource, fusion: Fusion, keys: Sequence[int]) -> dict[str, float]:
    """Held-out items as image-only gallery (text-ish blocks removed); each queried by its own text.

    The query puts the item's text vector in every text block, like ``Library.search`` does.
    """
    items = read_items(store, keys, fusion.modalities)
    queries, gallery = [], []
    for it in items:
        src = it[_source(it, None) or BRIDGE_SOURCES[0]][0]
        queries.append(fusion.query_vector({m: src for m in QUERY_BLOCKS if m in fusion.dims}))
        gallery.append({m: v for m, v in it.items() if m not in BRIDGE_SOURCES})
    fused, _ = fusion.fuse(gallery)
    return recall(np.stack(queries) @ fused.T)


def train_library_fusion(
    store: VectorSource,
    dims: dict[str, int],
    epochs: int = 30,
    *,
    keys: Sequence[int] | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    attention_epochs: int = 0,
    bridge_hidden: int = 0,
    lr: float = 1e-3,
    center: bool = True,
    item_fill: bool = True,
    batch_size: int = 256,
    chunk_size: int = 4096,
    log: Callable[[str], None] | None = None,
) -> tuple[Fusion, dict[str, Any]]:
    """Train centring, attention/adapters (``attention_epochs``) and bridges (``epochs``) on ``keys``
    (default: every ok item of the store). ``item_fill`` also learns frames -> text for image-only
    items; the bridged query weight is chosen among ``BRIDGE_WEIGHTS`` on the hold-out (so the
    reported ``after`` is slightly optimistic; ``by_bridge_weight`` shows every choice).

    Returns the trained :class:`Fusion` and a report with held-out text -> image Recall@1/5/10 of the
    default fusion (``before``) and of the trained one (``after``).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not 0 <= holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    started = time.perf_counter()
    dev = pick_device(device)
    rng = np.random.default_rng(seed)
    if keys is None:
        keys = [int(r.key) for r in store.items() if r.key is not None]
    keys = sorted(int(k) for k in keys)
    pairs = paired_keys(store, keys, dims, chunk_size)
    candidates = sorted(set().union(*pairs.values())) if pairs else []
    n_hold = int(round(holdout_fraction * len(candidates)))
    holdout = sorted(int(k) for k in rng.permutation(np.asarray(candidates, dtype=np.int64))[:n_hold])
    held = set(holdout)
    train_keys = [k for k in keys if k not in held]
    if not train_keys:
        raise ValueError("no item left to train on after the hold-out")
    centers = library_centers(store, train_keys, dims, chunk_size) if center else {}
    base = Fusion(dims, device=dev, centers=centers)
    report: dict[str, Any] = {
        "items": len(keys),
        "train_items": len(train_keys),
        "holdout_items": len(holdout),
    }
    model = base.model
    if attention_epochs > 0:

        def batches() -> Iterator[list[Item]]:
            for part in chunked(train_keys, chunk_size):
                items = [base.centre(it) for it in read_items(store, part, list(base.modalities)) if it]
                for start in range(0, len(items), batch_size):
                    yield items[start : start + batch_size]

        trained, att_report = train_fusion(
            batches, dims, epochs=attention_epochs, device=dev, seed=seed, log=log
        )
        model = trained.model
        report["attention"] = {"epochs": att_report["epochs"][-1], "seconds": att_report["seconds"]}
    fusion = Fusion(dims, model=model, device=dev, centers=centers)
    bridges = nn.ModuleDict()
    report["bridges"] = {}
    for target, target_keys in pairs.items():
        fit_keys = [k for k in target_keys if k not in held]
        if len(fit_keys) < 2:
            continue
        bridge, history = train_bridge(
            store,
            fusion,
            target,
            fit_keys,
            epochs,
            seed,
            hidden=bridge_hidden,
            lr=lr,
            batch_size=batch_size,
            chunk=chunk_size,
            log=log,
        )
        bridges[target] = bridge
        report["bridges"][target] = {"pairs": len(fit_keys), "first": history[0], "last": history[-1]}
    fills = nn.ModuleDict()
    fill_keys = [k for k in pairs.get(SET_MODALITY, []) if k not in held]
    if item_fill and FILL_TARGET in dims and len(fill_keys) >= 2:
        fill, history = train_bridge(
            store,
            fusion,
            SET_MODALITY,
            fill_keys,
            epochs,
            seed,
            hidden=bridge_hidden,
            lr=lr,
            batch_size=batch_size,
            chunk=chunk_size,
            fill=FILL_TARGET,
            log=log,
        )
        fills[FILL_TARGET] = fill
        report["fills"] = {
            f"{SET_MODALITY}->{FILL_TARGET}": {
                "pairs": len(fill_keys),
                "first": history[0],
                "last": history[-1],
            }
        }
    fusion = Fusion(
        dims,
        model=model,
        device=dev,
        centers=centers,
        bridges=bridges if len(bridges) else None,
        fills=fills if len(fills) else None,
        origin="trained",
        stats={"items": len(keys), "counts": {}, "taken": time.time()},
    )
    if holdout:
        sample = holdout[:: max(1, len(holdout) // MAX_EVAL_ITEMS)][:MAX_EVAL_ITEMS]
        held_report: dict[str, Any] = {
            "items": len(sample),
            "before": text_to_image_recall(store, Fusion(dims, device=dev), sample),
        }
        if fusion.bridges is not None:  # pick the bridged blocks' query weight on the hold-out
            by_weight = {}
            for weight in BRIDGE_WEIGHTS:
                fusion.bridge_weight = weight
                by_weight[weight] = text_to_image_recall(store, fusion, sample)
            best = max(BRIDGE_WEIGHTS, key=lambda w: (by_weight[w]["R@10"], by_weight[w]["R@5"], -w))
            fusion.bridge_weight = best
            held_report["by_bridge_weight"] = {str(w): r for w, r in by_weight.items()}
        held_report["after"] = text_to_image_recall(store, fusion, sample)
        report["holdout_text_to_image"] = held_report
    report["bridge_weight"] = fusion.bridge_weight
    fusion.version = trained_version(fusion)
    report["version"] = fusion.version
    report.update(seed=seed, epochs=epochs, attention_epochs=attention_epochs, center=center, device=dev)
    report["seconds"] = round(time.perf_counter() - started, 3)
    return fusion, report


def load_checkpoint(path: Path, version: str, device: str = "auto") -> Fusion:
    """Load a checkpoint and verify it is the one named: its version and its weights' hash (the end of
    a trained version), so a damaged file is refused instead of fusing queries wrongly."""
    try:
        fusion = Fusion.load(path, device=device)
    except FileNotFoundError:
        raise
    except Exception as exc:  # FusionInputError and whatever a damaged file makes torch raise
        raise CheckpointError(str(path), f"unreadable ({exc})") from exc
    if fusion.version != version:
        raise CheckpointError(str(path), f"holds version {fusion.version!r}, expected {version!r}")
    expected_hash = version.rsplit("-", 1)[-1]
    if "-" in version and fusion.state_hash() != expected_hash:
        raise CheckpointError(str(path), "its weights do not match the hash in its version (damaged)")
    return fusion


class CheckpointError(LibraryError):
    """The fusion checkpoint a library uses is missing or damaged (names the file and the fix)."""

    def __init__(self, path: str, reason: str) -> None:
        if "mmrec check" not in reason:
            library = Path(path).parent.parent
            reason += f"; run `mmrec check --library {library} --repair` or `mmrec train-fusion` again"
        super().__init__(path, reason)


class FusedStore(VectorSource, Protocol):
    """What re-fusing needs from a library store (``mmrec.store.LibraryStore``)."""

    def fused(self, keys: Sequence[int]) -> np.ndarray: ...

    def replace_fusion(
        self,
        fusion_version: str,
        fuse: Callable[[list[int]], tuple[np.ndarray, list[dict[str, float]]]],
        write_checkpoint: Callable[[Path], object] | None = None,
        chunk: int = 4096,
    ) -> int: ...


def fuse_keys(
    store: FusedStore, fusion: Fusion, keys: list[int]
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Fused rows and weights of ``keys`` from their stored modality vectors (no encoder runs); an
    item without any vector this fusion reads keeps its stored fused row."""
    items = read_items(store, keys, fusion.modalities)
    present = [i for i, it in enumerate(items) if it]
    out = np.zeros((len(keys), fusion.dim), dtype=np.float32)
    weights: list[dict[str, float]] = [{} for _ in keys]
    if present:
        fused, w = fusion.fuse([items[i] for i in present])
        out[present] = fused
        for j, i in enumerate(present):
            weights[i] = w[j]
    missing = [i for i, it in enumerate(items) if not it]
    if missing:
        old = store.fused([keys[i] for i in missing])
        if old.shape[1] != fusion.dim:
            raise LibraryError(f"key {keys[missing[0]]}", "has no modality vector to re-fuse from")
        out[missing] = old
    return out, weights


def publish_fusion(store: FusedStore, fusion: Fusion, save_checkpoint: bool = True) -> int:
    """Make ``fusion`` the library's, all or nothing: checkpoint, every item re-fused, one commit, the
    manifest, unused checkpoints removed (``LibraryStore.replace_fusion``). Returns the items re-fused."""
    return store.replace_fusion(
        fusion.version,
        lambda keys: fuse_keys(store, fusion, keys),
        write_checkpoint=fusion.save if save_checkpoint else None,
    )
