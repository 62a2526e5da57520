"""Self-supervised training of the fusion network.

Objective: two views of every item by modality dropout (and frame subsampling, so the frames block of
the two views differs), InfoNCE between the views' fused vectors across the batch; plus, when
co-consumed item pairs are known, InfoNCE pulling those items together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from mmrec.fusion.batching import check_item, collate
from mmrec.fusion.fusion import Fusion, pick_device, trained_version
from mmrec.fusion.model import SET_MODALITY, AttentionFusion

Item = dict[str, np.ndarray]


def make_view(
    item: Item,
    rng: np.random.Generator,
    keep: float = 0.5,
    frame_keep: float = 0.5,
    share_with: Item | None = None,
) -> Item:
    """A random non-empty subset of the item's modalities; frames also lose a random subset of frames.

    With ``share_with`` (the other view) the subset is forced to overlap it: blocks of different
    modalities are orthogonal in the fused space, so two disjoint views would score 0 and teach nothing.
    """
    names = list(item)
    kept = [m for m in names if rng.random() < keep]
    if not kept:
        kept = [names[int(rng.integers(len(names)))]]
    if share_with is not None and not set(kept) & set(share_with):
        shared = [m for m in names if m in share_with]
        kept.append(shared[int(rng.integers(len(shared)))])
    view: Item = {}
    for m in kept:
        arr = item[m]
        if m == SET_MODALITY and arr.shape[0] > 1:
            sel = rng.random(arr.shape[0]) < frame_keep
            if not sel.any():
                sel[int(rng.integers(arr.shape[0]))] = True
            arr = arr[sel]
        view[m] = arr
    return view


def info_nce(
    anchors: torch.Tensor, positives: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Cross-entropy of each anchor against all positives, the right one at ``targets``."""
    logits = anchors @ positives.T / temperature
    return F.cross_entropy(logits, targets)


def _local_pairs(pairs: np.ndarray, start: int, size: int) -> np.ndarray:
    """Pairs whose two items both fall in the batch [start, start + size), as batch-local indices."""
    if pairs.size == 0:
        return pairs
    inside = (pairs >= start) & (pairs < start + size)
    return pairs[inside.all(axis=1)] - start


def train_fusion(
    batches: Callable[[], Iterator[list[Item]]],
    dims: dict[str, int],
    epochs: int = 10,
    lr: float = 1e-3,
    device: str = "auto",
    co_consumed_pairs: Sequence[tuple[int, int]] | None = None,
    temperature: float = 0.05,
    seed: int = 0,
    hidden: int = 32,
    pair_weight: float = 1.0,
    init: Fusion | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Fusion, dict]:
    """Train an :class:`AttentionFusion` and return it wrapped in a :class:`Fusion` plus a report.

    ``batches()`` is called once per epoch and must yield the items in the same order each time:
    ``co_consumed_pairs`` index items by their position in that stream. A pair only contributes when
    both items fall in the same batch, so callers with interaction data should batch co-consumed
    items together. Deterministic for a given ``seed`` on one device.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dev = pick_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AttentionFusion(dims, hidden=hidden)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    model = model.to(dev).train()
    dims = dict(model.dims)
    pairs = np.asarray(co_consumed_pairs if co_consumed_pairs else [], dtype=np.int64).reshape(-1, 2)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(epochs):
        totals = {"loss": 0.0, "view_loss": 0.0, "pair_loss": 0.0}
        n_batches = n_items = n_pairs = offset = 0
        for raw in batches():
            items = [check_item(offset + i, it, dims) for i, it in enumerate(raw)]
            local = _local_pairs(pairs, offset, len(items))
            offset += len(items)
            if len(items) < 2:
                continue
            view_a = [make_view(it, rng) for it in items]
            view_b = [make_view(it, rng, share_with=va) for it, va in zip(items, view_a, strict=True)]
            za, _ = model(*collate(view_a, dims, dev))
            zb, _ = model(*collate(view_b, dims, dev))
            targets = torch.arange(len(items), device=dev)
            view_loss = 0.5 * (
                info_nce(za, zb, targets, temperature) + info_nce(zb, za, targets, temperature)
            )
            loss = view_loss
            pair_loss = torch.zeros((), device=dev)
            if len(local):
                a = torch.from_numpy(local[:, 0]).to(dev)
                b = torch.from_numpy(local[:, 1]).to(dev)
                pair_loss = 0.5 * (info_nce(za[a], zb, b, temperature) + info_nce(za[b], zb, a, temperature))
                loss = loss + pair_weight * pair_loss
                n_pairs += len(local)
            opt.zero_grad()
            loss.backward()
            opt.step()
            totals["loss"] += float(loss.detach())
            totals["view_loss"] += float(view_loss.detach())
            totals["pair_loss"] += float(pair_loss.detach())
            n_batches += 1
            n_items += len(items)
        if n_batches == 0:
            raise ValueError("batches() yielded no batch with at least 2 items: nothing to train on")
        row = {k: v / n_batches for k, v in totals.items()}
        row.update(epoch=epoch, batches=n_batches, items=n_items, pairs=n_pairs)
        history.append(row)
        if log is not None:
            log(
                f"epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f} (views {row['view_loss']:.4f}, pairs {row['pair_loss']:.4f})"
            )
    model.eval()
    fusion = Fusion(dims, model=model, device=dev)
    fusion.version = trained_version(fusion)
    report = {
        "version": fusion.version,
        "epochs": history,
        "seed": seed,
        "lr": lr,
        "temperature": temperature,
        "device": dev,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return fusion, report
