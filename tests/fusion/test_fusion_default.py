"""The untrained fusion is exactly block concatenation with uniform weights over present modalities."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec import modalities
from mmrec.fusion import Fusion, FusionInputError

DIMS = {"frames": 12, "audio": 6, "speech": 8, "text": 8, "tags": 8, "vtags": 8}


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.normal(size=shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def random_item(rng: np.random.Generator, present: list[str], n_frames: int = 5) -> dict[str, np.ndarray]:
    return {m: unit(rng, n_frames if m == "frames" else 1, DIMS[m]) for m in present}


@pytest.fixture(scope="module")
def fusion() -> Fusion:
    return Fusion(DIMS, device="cpu")


def test_untrained_is_uniform_block_concat_by_hand(fusion: Fusion) -> None:
    rng = np.random.default_rng(0)
    item = random_item(rng, ["frames", "audio", "text"])
    fused, weights = fusion.fuse([item])
    assert weights == [pytest.approx({"frames": 1 / 3, "audio": 1 / 3, "text": 1 / 3})]
    mean = item["frames"].mean(axis=0)
    expected = np.zeros(sum(DIMS.values()), dtype=np.float32)
    expected[0:12] = mean / np.linalg.norm(mean) / np.sqrt(3)
    expected[12:18] = item["audio"][0] / np.sqrt(3)
    expected[26:34] = item["text"][0] / np.sqrt(3)
    np.testing.assert_allclose(fused[0], expected, atol=1e-6)
    assert fusion.version == "default"
    assert fusion.dim == 50


def test_inner_product_is_weighted_sum_of_cosines(fusion: Fusion) -> None:
    rng = np.random.default_rng(1)
    a = random_item(rng, ["audio", "text", "tags", "vtags"])
    b = random_item(rng, ["audio", "text"])
    (fa, fb), _ = fusion.fuse([a, b])
    cos = {m: float(a[m][0] @ b[m][0]) for m in ("audio", "text")}
    expected = sum(np.sqrt(0.25 * 0.5) * c for c in cos.values())
    assert float(fa @ fb) == pytest.approx(expected, abs=1e-6)
    contrib = fusion.contributions(fa, fb[None, :])[0]
    assert set(contrib) == {"audio", "text"}
    assert contrib["text"] == pytest.approx(np.sqrt(0.125) * cos["text"], abs=1e-6)
    assert sum(contrib.values()) == pytest.approx(float(fa @ fb), abs=1e-6)


def test_absent_modalities_get_zero_weight_and_zero_block(fusion: Fusion) -> None:
    rng = np.random.default_rng(2)
    item = random_item(rng, ["frames", "speech"])
    with_empty = dict(item, audio=np.zeros((0, DIMS["audio"]), dtype=np.float32))
    (f1, f2), (w1, w2) = fusion.fuse([item, with_empty])
    np.testing.assert_array_equal(f1, f2)
    assert w1 == w2 and set(w1) == {"frames", "speech"}
    assert not np.any(f1[fusion.slices["audio"]]) and not np.any(f1[fusion.slices["text"]])


def test_frame_order_does_not_matter_and_norm_is_one(fusion: Fusion) -> None:
    rng = np.random.default_rng(3)
    item = random_item(rng, ["frames", "audio", "vtags"], n_frames=9)
    shuffled = dict(item, frames=item["frames"][rng.permutation(9)])
    fused, _ = fusion.fuse([item, shuffled])
    np.testing.assert_allclose(fused[0], fused[1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)


def test_batch_equals_single_with_ragged_frames() -> None:
    rng = np.random.default_rng(4)
    fusion = Fusion(DIMS, device="cpu", batch_size=7)
    mods = list(DIMS)
    items = [
        random_item(
            rng, list(rng.choice(mods, size=rng.integers(1, 7), replace=False)), int(rng.integers(1, 12))
        )
        for _ in range(20)
    ]
    batched, wb = fusion.fuse(items)
    for i, it in enumerate(items):
        single, ws = fusion.fuse([it])
        np.testing.assert_allclose(single[0], batched[i], atol=1e-5)
        assert ws[0] == pytest.approx(wb[i])
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_text_only_query_ranks_by_mean_text_cosine(fusion: Fusion) -> None:
    rng = np.random.default_rng(5)
    items = [random_item(rng, list(DIMS)) for _ in range(30)]
    fused, _ = fusion.fuse(items)
    q = unit(rng, DIMS["text"])
    text_blocks = modalities.text_blocks()
    query = fusion.query_vector({m: q for m in text_blocks})
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-6)
    scores = fused @ query
    mean_cos = np.array([np.mean([float(it[m][0] @ q) for m in text_blocks]) for it in items])
    # every item has all 6 modalities (w = 1/6), the query 4 blocks (w = 1/4): score = 4 sqrt(1/24) mean cos
    np.testing.assert_allclose(scores, 4 * np.sqrt(1 / 24) * mean_cos, atol=1e-5)
    assert list(np.argsort(-scores)) == list(np.argsort(-mean_cos))


def test_query_weights_are_renormalised(fusion: Fusion) -> None:
    rng = np.random.default_rng(6)
    q_text, q_frames = unit(rng, 8), unit(rng, 12)
    query = fusion.query_vector({"text": q_text, "frames": q_frames}, weights={"text": 3.0, "frames": 1.0})
    np.testing.assert_allclose(query[fusion.slices["text"]], q_text * np.sqrt(0.75), atol=1e-6)
    np.testing.assert_allclose(query[fusion.slices["frames"]], q_frames * np.sqrt(0.25), atol=1e-6)


def test_bad_input_names_item_and_modality(fusion: Fusion) -> None:
    rng = np.random.default_rng(7)
    good = random_item(rng, ["audio"])
    with pytest.raises(FusionInputError, match=r"item 1: modality 'text' has shape \(1, 5\)"):
        fusion.fuse([good, {"text": np.ones((1, 5), dtype=np.float32)}])
    with pytest.raises(FusionInputError, match="item 0: unknown modality 'smell'"):
        fusion.fuse([{"smell": np.ones((1, 3))}])
    with pytest.raises(FusionInputError, match="item 0: no modality vector present"):
        fusion.fuse([{}])
    with pytest.raises(FusionInputError, match="NaN"):
        fusion.fuse([{"audio": np.full((1, 6), np.nan)}])


def test_save_load_round_trip(tmp_path, fusion: Fusion) -> None:
    rng = np.random.default_rng(8)
    items = [random_item(rng, ["frames", "text", "audio"]) for _ in range(4)]
    # perturb the weights so the round trip is checked on non-default parameters
    import torch

    trained = Fusion(DIMS, device="cpu", version="20260101T000000Z-abc")
    with torch.no_grad():
        for p in trained.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    path = trained.save(tmp_path / "fusion" / "v1.pt")
    loaded = Fusion.load(path, device="cpu")
    assert loaded.version == "20260101T000000Z-abc" and loaded.dims == trained.dims
    a, wa = trained.fuse(items)
    b, wb = loaded.fuse(items)
    np.testing.assert_array_equal(a, b)
    assert wa == wb
    assert not np.allclose(a, fusion.fuse(items)[0], atol=1e-3)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FusionInputError, match="junk.pt: not a fusion checkpoint"):
        Fusion.load(tmp_path / "junk.pt", device="cpu")


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(9)
    items = [
        random_item(rng, ["frames", "audio", "text", "vtags"], n_frames=int(rng.integers(1, 9)))
        for _ in range(16)
    ]
    cpu, wc = Fusion(DIMS, device="cpu").fuse(items)
    gpu_fusion = Fusion(DIMS, device="auto")
    assert gpu_fusion.device == "cuda"
    gpu, wg = gpu_fusion.fuse(items)
    np.testing.assert_allclose(gpu, cpu, atol=1e-5)
    assert [pytest.approx(w, abs=1e-6) for w in wc] == wg
