"""CLIP and SigLIP adapters on tiny random models saved to folders, fed real stamps and video frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from encoders.base import CrossModalTextTower, FrameEncoder
from encoders.hub.clip import ClipFrameEncoder
from encoders.hub.errors import HubModelError

LABELS = ["kangaroo", "cat", "dog", "fox", "rabbit", "forest", "music"]


@pytest.fixture(scope="session", params=["clip", "siglip"])
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def model_dir(family: str, clip_dir: Path, siglip_dir: Path) -> Path:
    return clip_dir if family == "clip" else siglip_dir


@pytest.fixture(scope="session")
def encoder(model_dir: Path) -> ClipFrameEncoder:
    return ClipFrameEncoder(str(model_dir), device="cpu", labels=LABELS)


def test_protocols_and_info(encoder: ClipFrameEncoder, family: str, model_dir: Path) -> None:
    tower = encoder.text_tower()
    assert isinstance(encoder, FrameEncoder)
    assert isinstance(tower, CrossModalTextTower)
    assert encoder.info.model == model_dir.name
    assert encoder.info.extra["family"] == family
    assert encoder.info.dim == (24 if family == "clip" else 32)
    assert tower.target_modality == "frames"
    assert tower.info.dim == encoder.info.dim and tower.info.model == encoder.info.model


def test_real_frames_are_unit_rows_and_distinct(
    encoder: ClipFrameEncoder, stamp_frames: list[np.ndarray], bunny_frames: list[np.ndarray]
) -> None:
    frames = [*stamp_frames, *bunny_frames]
    vecs = encoder.encode_frames(frames)
    assert vecs.shape == (len(frames), encoder.info.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    off_diag = sims[~np.eye(len(frames), dtype=bool)]
    assert off_diag.max() < 0.99999  # different pictures give different vectors


def test_batch_equals_single(encoder: ClipFrameEncoder, stamp_frames: list[np.ndarray]) -> None:
    batch = encoder.encode_frames(stamp_frames)
    for i, frame in enumerate(stamp_frames):
        single = encoder.encode_frames([frame])[0]
        assert float(single @ batch[i]) >= 0.9999
    texts = ["a red kangaroo", "dog", ""]
    tower = encoder.text_tower()
    tb = tower.encode_text(texts)
    for i, t in enumerate(texts):
        assert float(tower.encode_text([t])[0] @ tb[i]) >= 0.9999


def test_save_and_reload_gives_identical_vectors(
    encoder: ClipFrameEncoder, model_dir: Path, tmp_path: Path, stamp_frames: list[np.ndarray]
) -> None:
    from transformers import AutoModel

    copy = tmp_path / "resaved"
    AutoModel.from_pretrained(str(model_dir)).save_pretrained(copy)
    for name in model_dir.iterdir():  # processor/tokenizer files
        if not (copy / name.name).exists():
            shutil.copy(name, copy / name.name)
    again = ClipFrameEncoder(str(copy), device="cpu")
    np.testing.assert_array_equal(again.encode_frames(stamp_frames), encoder.encode_frames(stamp_frames))
    np.testing.assert_array_equal(
        again.text_tower().encode_text(["cat"]), encoder.text_tower().encode_text(["cat"])
    )
    assert again.info.model == "resaved"


def test_text_tower_rows(encoder: ClipFrameEncoder) -> None:
    tower = encoder.text_tower()
    vecs = tower.encode_text(["a photo of a cat", "a photo of a dog", "hello world"])
    assert vecs.shape == (3, encoder.info.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert float(vecs[0] @ vecs[2]) < 0.99999
    assert tower.encode_text([]).shape == (0, encoder.info.dim)


def test_zero_shot_tags_follow_image_text_similarity(
    encoder: ClipFrameEncoder, family: str, stamp_frames: list[np.ndarray]
) -> None:
    tags = encoder.tag_frames(stamp_frames, top_k=3)
    assert len(tags) == len(stamp_frames) and all(len(t) == 3 for t in tags)
    images = encoder.encode_frames(stamp_frames)
    labels = encoder.text_tower().encode_text([f"a photo of {x}" for x in LABELS])
    sims = images @ labels.T
    for i, row in enumerate(tags):
        expected = [LABELS[j] for j in np.argsort(-sims[i], kind="stable")[:3]]
        assert [t.label for t in row] == expected
        scores = [t.score for t in row]
        assert scores == sorted(scores, reverse=True) and all(0.0 < s < 1.0 for s in scores)
    full = encoder.tag_frames(stamp_frames[:1], top_k=len(LABELS))[0]
    total = sum(t.score for t in full)
    if family == "clip":
        assert total == pytest.approx(1.0, abs=1e-5)  # softmax over the vocabulary
    else:
        assert 0.0 < total < len(LABELS)  # independent sigmoids


def test_encode_and_tag_is_one_pass_with_the_same_answers(
    encoder: ClipFrameEncoder, stamp_frames: list[np.ndarray]
) -> None:
    vecs, tags = encoder.encode_and_tag(stamp_frames, top_k=2)
    np.testing.assert_allclose(vecs, encoder.encode_frames(stamp_frames), atol=1e-6)
    separate = encoder.tag_frames(stamp_frames, top_k=2)
    assert [[t.label for t in row] for row in tags] == [[t.label for t in row] for row in separate]


def test_no_vocabulary_means_no_tags(model_dir: Path, stamp_frames: list[np.ndarray]) -> None:
    plain = ClipFrameEncoder(str(model_dir), device="cpu")
    assert plain.tag_frames(stamp_frames[:2]) == [[], []]


def test_bad_frames_are_named(encoder: ClipFrameEncoder, stamp_frames: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match=r"frames\[1\].*HxWx3"):
        encoder.encode_frames([stamp_frames[0], stamp_frames[0][:, :, 0]])
    with pytest.raises(ValueError, match=r"frames\[0\].*uint8"):
        encoder.encode_frames([stamp_frames[0].astype(np.float32)])
    with pytest.raises(TypeError, match="single str"):
        encoder.text_tower().encode_text("cat")  # type: ignore[arg-type]
    assert encoder.encode_frames([]).shape == (0, encoder.info.dim)


def test_wrong_model_type_is_a_hub_error(clap_dir: Path) -> None:
    with pytest.raises(HubModelError, match=r"frames model .*tiny-clap.*not CLIP or SigLIP"):
        ClipFrameEncoder(str(clap_dir), device="cpu")


@pytest.mark.gpu
def test_cuda_half_precision_matches_cpu(clip_dir: Path, stamp_frames: list[np.ndarray]) -> None:
    cpu = ClipFrameEncoder(str(clip_dir), device="cpu").encode_frames(stamp_frames)
    gpu_enc = ClipFrameEncoder(str(clip_dir), device="cuda")
    assert gpu_enc.info.device == "cuda"
    gpu = gpu_enc.encode_frames(stamp_frames)
    assert gpu.dtype == np.float32
    assert np.min(np.sum(cpu * gpu, axis=1)) >= 0.999
