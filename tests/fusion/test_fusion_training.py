"""Training on synthetic items whose modalities share a latent: the loss falls and retrieval improves."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from mmrec.fusion import DEFAULT_VERSION, Fusion, train_fusion

DIMS = {"frames": 32, "audio": 16, "text": 24}
LATENT = 8


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic_items(n: int, n_frames: int = 8, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Each item has a latent z; every modality is a fixed projection of z plus noise.

    Frames also carry strong per-frame nuisance in a fixed low-rank subspace (camera motion, lighting),
    which the frames adapter can learn to suppress because two views of an item see different frames.
    """
    world = np.random.default_rng(1234)  # the same projections for every call: one "model set"
    proj = {m: world.normal(size=(d, LATENT)) for m, d in DIMS.items()}
    nuisance = world.normal(size=(DIMS["frames"], 6))
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        z = rng.normal(size=LATENT)
        frames = proj["frames"] @ z + 2.5 * rng.normal(size=(n_frames, 6)) @ nuisance.T
        frames += 0.3 * rng.normal(size=frames.shape)
        item = {"frames": _unit(frames)}
        for m in ("audio", "text"):
            item[m] = _unit((proj[m] @ z + 0.5 * rng.normal(size=DIMS[m]))[None, :])
        items.append(item)
    return items


def frames_query_hit_rate(fusion: Fusion, items: list[dict[str, np.ndarray]]) -> float:
    """Query: an item's first half of frames alone; database: items with the other half + audio + text."""
    half = items[0]["frames"].shape[0] // 2
    queries, _ = fusion.fuse([{"frames": it["frames"][:half]} for it in items])
    database, _ = fusion.fuse([dict(it, frames=it["frames"][half:]) for it in items])
    top = np.argmax(queries @ database.T, axis=1)
    return float(np.mean(top == np.arange(len(items))))


@pytest.fixture(scope="module")
def trained() -> tuple[Fusion, dict]:
    torch.set_num_threads(2)
    train = synthetic_items(256, seed=1)

    def batches() -> Iterator[list[dict[str, np.ndarray]]]:
        for start in range(0, len(train), 64):
            yield train[start : start + 64]

    return train_fusion(batches, DIMS, epochs=15, lr=1e-2, device="cpu", seed=0)


def test_training_lowers_loss(trained: tuple[Fusion, dict]) -> None:
    _, report = trained
    losses = [row["loss"] for row in report["epochs"]]
    assert len(losses) == 15
    # views are random, so compare averages of the first and last epochs
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3]), losses


def test_training_improves_cross_view_retrieval(trained: tuple[Fusion, dict]) -> None:
    fusion, report = trained
    held_out = synthetic_items(300, seed=2)  # fresh items from the same projections
    before = frames_query_hit_rate(Fusion(DIMS, device="cpu"), held_out)
    after = frames_query_hit_rate(fusion, held_out)
    assert after > before + 0.3, (before, after)
    assert fusion.version != DEFAULT_VERSION and fusion.version == report["version"]


def test_trained_output_keeps_the_contract(trained: tuple[Fusion, dict]) -> None:
    fusion, _ = trained
    items = synthetic_items(10, seed=3)
    items[0].pop("audio")
    fused, weights = fusion.fuse(items)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    assert weights[0]["text"] > 0 and "audio" not in weights[0]
    assert all(sum(w.values()) == pytest.approx(1.0, abs=1e-5) for w in weights)
    assert not np.any(fused[0, fusion.slices["audio"]])


def test_training_is_deterministic_and_uses_pairs() -> None:
    items = synthetic_items(64, seed=4)

    def batches() -> Iterator[list[dict[str, np.ndarray]]]:
        yield items[:32]
        yield items[32:]

    pairs = [(0, 1), (2, 3), (40, 41), (5, 50)]  # the last straddles two batches and is skipped
    a, ra = train_fusion(batches, DIMS, epochs=2, device="cpu", seed=7, co_consumed_pairs=pairs)
    b, rb = train_fusion(batches, DIMS, epochs=2, device="cpu", seed=7, co_consumed_pairs=pairs)
    assert [r["loss"] for r in ra["epochs"]] == [r["loss"] for r in rb["epochs"]]
    assert ra["epochs"][0]["pairs"] == 3 and ra["epochs"][0]["pair_loss"] > 0
    np.testing.assert_array_equal(a.fuse(items)[0], b.fuse(items)[0])
