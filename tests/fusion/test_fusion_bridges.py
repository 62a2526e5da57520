"""Bridges on real data: tuxpaint stamps (bundled frame encoder) and their captions (bundled e5)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.cache import cache_root
from mmrec.fusion import Fusion
from mmrec.fusion.fusion import DEFAULT_VERSION
from mmrec.fusion.library_training import train_library_fusion

N_STAMPS = 120
CACHE = cache_root() / "embeddings" / "fusion-bridges-stamps-120.npz"


@dataclass
class Rec:
    key: int


class MemoryStore:
    """The two store methods training reads, over in-memory arrays."""

    def __init__(self, columns: dict[str, list[np.ndarray | None]]) -> None:
        self.columns = columns
        self.n = len(next(iter(columns.values())))

    def vectors(self, modality: str, keys: Sequence[int]) -> list[np.ndarray | None]:
        col = self.columns.get(modality)
        return [None if col is None else col[int(k)] for k in keys]

    def items(self) -> Iterator[Rec]:
        return (Rec(k) for k in range(self.n))


def _caption(png: Path) -> str:
    for stem in (png.stem, png.stem.removesuffix("_mirror")):
        txt = png.with_name(stem + ".txt")
        if txt.is_file():
            return txt.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
    return ""


def _encode(stamps_dir: Path) -> dict[str, np.ndarray]:
    from encoders.media import load_image
    from encoders.registry import load_models
    from pipelines.item_encoder import aggregate_tags, vtags_text

    pngs = [p for p in sorted(stamps_dir.rglob("*.png")) if _caption(p)]
    pngs = pngs[:: max(1, len(pngs) // N_STAMPS)][:N_STAMPS]
    models = load_models("bundled", device="cpu")
    frames, vtags = [], []
    for start in range(0, len(pngs), 16):
        images = [load_image(p) for p in pngs[start : start + 16]]
        frames.append(models.frames.encode_frames(images))
        vtags += [vtags_text(aggregate_tags([t])) for t in models.frames.tag_frames(images, top_k=5)]
    captions = [_caption(p) for p in pngs]
    return {
        "frames": np.concatenate(frames).astype(np.float32),
        "text": models.text.encode_text(captions, role="passage").astype(np.float32),
        "query": models.text.encode_text(captions, role="query").astype(np.float32),
        "vtags": models.text.encode_text(vtags, role="passage").astype(np.float32),
    }


@pytest.fixture(scope="session")
def stamp_vectors(stamps_dir: Path) -> dict[str, np.ndarray]:
    """Frames, caption and visual-tag vectors of 120 stamps across all categories (cached on disk)."""
    if CACHE.is_file():
        with np.load(CACHE) as data:
            return {k: data[k] for k in data.files}
    vecs = _encode(stamps_dir)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, **vecs)
    return vecs


DIMS = {"frames": 1280, "text": 384, "vtags": 384}


@pytest.fixture(scope="module")
def trained(stamp_vectors: dict[str, np.ndarray]) -> tuple[Fusion, dict, MemoryStore]:
    torch.set_num_threads(2)
    n = len(stamp_vectors["frames"])
    store = MemoryStore(
        {
            "frames": [stamp_vectors["frames"][i : i + 1] for i in range(n)],
            "text": [stamp_vectors["text"][i : i + 1] for i in range(n)],
            "vtags": [stamp_vectors["vtags"][i : i + 1] for i in range(n)],
        }
    )
    fusion, report = train_library_fusion(store, DIMS, epochs=30, holdout_fraction=0.25, seed=0, device="cpu")
    return fusion, report, store


def test_bridge_improves_held_out_text_to_image(trained: tuple[Fusion, dict, MemoryStore]) -> None:
    _, report, _ = trained
    held = report["holdout_text_to_image"]
    assert held["items"] == 30
    assert report["bridges"]["frames"]["pairs"] == 90
    # held-out stamps were never trained on; their captions now reach their image-only items
    # (measured: R@5 0.33 -> 0.60, R@1 0.17 -> 0.30 on a 30-item gallery)
    assert held["after"]["R@5"] >= held["before"]["R@5"] + 0.15, held
    assert held["after"]["R@1"] > held["before"]["R@1"], held
    first, last = report["bridges"]["frames"]["first"], report["bridges"]["frames"]["last"]
    assert last["loss"] < 0.5 * first["loss"]


def test_query_fills_frames_block_only_when_missing(
    trained: tuple[Fusion, dict, MemoryStore], stamp_vectors: dict[str, np.ndarray]
) -> None:
    fusion, _, _ = trained
    q = stamp_vectors["query"][0]
    frames_sl = fusion.slices["frames"]
    with_bridge = fusion.query_vector({"text": q, "vtags": q})
    assert np.linalg.norm(with_bridge[frames_sl]) > 0.3  # one of three equal-weight blocks
    assert abs(float(np.linalg.norm(with_bridge)) - 1.0) < 1e-5
    given = stamp_vectors["frames"][5]
    explicit = fusion.query_vector({"text": q, "frames": given})
    expected = fusion.query_vector({"frames": given})
    cos = float(explicit[frames_sl] @ expected[frames_sl]) / float(np.linalg.norm(explicit[frames_sl]))
    assert cos > 0.999  # a real text tower's frames vector is used as given, not replaced by the bridge


def test_untrained_fusion_has_no_bridge(stamp_vectors: dict[str, np.ndarray]) -> None:
    fusion = Fusion(DIMS, device="cpu")
    q = stamp_vectors["query"][0]
    vec = fusion.query_vector({"text": q, "vtags": q})
    assert fusion.version == DEFAULT_VERSION and fusion.bridges is None and not fusion.centers
    assert not np.any(vec[fusion.slices["frames"]])
    half = q / np.linalg.norm(q) / np.sqrt(2)
    np.testing.assert_allclose(vec[fusion.slices["text"]], half, atol=1e-6)


def test_checkpoint_round_trip_keeps_bridges_and_centers(
    tmp_path: Path, trained: tuple[Fusion, dict, MemoryStore], stamp_vectors: dict[str, np.ndarray]
) -> None:
    fusion, _, store = trained
    path = fusion.save(tmp_path / f"{fusion.version}.pt")
    loaded = Fusion.load(path, device="cpu")
    assert loaded.version == fusion.version and loaded.state_hash() == fusion.state_hash()
    assert loaded.bridges is not None and list(loaded.bridges) == ["frames"]
    assert loaded.fills is not None and list(loaded.fills) == ["text"]
    assert set(loaded.centers) == set(DIMS)
    q = stamp_vectors["query"][3]
    np.testing.assert_allclose(loaded.query_vector({"text": q}), fusion.query_vector({"text": q}), atol=1e-6)
    items = [{m: store.vectors(m, [k])[0] for m in DIMS} for k in range(4)]
    np.testing.assert_allclose(loaded.fuse(items)[0], fusion.fuse(items)[0], atol=1e-6)


def test_image_only_items_get_an_estimated_text_block(
    trained: tuple[Fusion, dict, MemoryStore], stamp_vectors: dict[str, np.ndarray]
) -> None:
    fusion, _, _ = trained
    image_only = {"frames": stamp_vectors["frames"][7:8], "vtags": stamp_vectors["vtags"][7:8]}
    captioned = dict(image_only, text=stamp_vectors["text"][7:8])
    (fused_img, fused_cap), (w_img, w_cap) = fusion.fuse([image_only, captioned])
    assert set(w_img) == {"frames", "vtags", "text"}  # the fill adds a text block
    # the estimate sits near the real caption's block: far above the typical caption of another stamp
    text_sl = fusion.slices["text"]
    own = float(fused_img[text_sl] @ fused_cap[text_sl])
    others, _ = fusion.fuse([{"text": stamp_vectors["text"][j : j + 1]} for j in range(20, 40)])
    assert own > float(np.median(others[:, text_sl] @ fused_img[text_sl])) + 0.05
    untrained, w_default = Fusion(DIMS, device="cpu").fuse([image_only])
    assert set(w_default[0]) == {"frames", "vtags"}
    assert not np.any(untrained[0][text_sl])


def test_format_1_checkpoint_still_loads(tmp_path: Path) -> None:
    old = Fusion({"text": 8, "frames": 4}, device="cpu")
    payload = {
        "format": 1,
        "dims": old.dims,
        "hidden": old.model.hidden,
        "version": "v1",
        "state_dict": old.model.state_dict(),
    }
    torch.save(payload, tmp_path / "v1.pt")
    loaded = Fusion.load(tmp_path / "v1.pt", device="cpu")
    assert loaded.version == "v1" and loaded.bridges is None and not loaded.centers


def test_bridge_input_feeds_the_bridge_and_leaves_text_blocks_alone(
    trained: tuple[Fusion, dict, MemoryStore], stamp_vectors: dict[str, np.ndarray]
) -> None:
    from mmrec.fusion.batching import FusionInputError

    fusion, _, _ = trained
    q, other = stamp_vectors["query"][0], stamp_vectors["query"][7]
    mixed = fusion.query_vector({"text": q, "vtags": q}, bridge_input=other)
    plain = fusion.query_vector({"text": q, "vtags": q})
    via_other = fusion.query_vector({"text": other, "vtags": other})
    frames_sl, text_sl = fusion.slices["frames"], fusion.slices["text"]
    # the frames block comes from the bridge input, the text block from the query itself
    np.testing.assert_allclose(mixed[frames_sl], via_other[frames_sl], atol=1e-5)
    np.testing.assert_allclose(mixed[text_sl], plain[text_sl], atol=1e-5)
    assert float(np.abs(mixed[frames_sl] - plain[frames_sl]).max()) > 1e-3  # a different input mattered
    with pytest.raises(FusionInputError, match="bridge_input: expected 384 values, got 3"):
        fusion.query_vector({"text": q}, bridge_input=np.ones(3, np.float32))
