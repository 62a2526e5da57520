"""EfficientNet-Lite0 frame encoder on real tuxpaint stamps and a real video frame."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from encoders.base import FrameEncoder


@pytest.fixture(scope="session")
def stamp_images(stamp_pngs: list[Path], image_loader: Callable[[Path], np.ndarray]) -> list[np.ndarray]:
    """32 stamps of varied sizes from across the categories."""
    step = max(1, len(stamp_pngs) // 32)
    return [image_loader(p) for p in stamp_pngs[::step][:32]]


def test_implements_protocol_and_shape(frame_encoder: FrameEncoder, stamp_images: list[np.ndarray]) -> None:
    assert isinstance(frame_encoder, FrameEncoder)
    vecs = frame_encoder.encode_frames(stamp_images[:3])
    assert vecs.shape == (3, 1280) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert frame_encoder.info.dim == 1280 and frame_encoder.info.modality == "frames"


def test_single_equals_inside_batch_of_32(
    frame_encoder: FrameEncoder, stamp_images: list[np.ndarray]
) -> None:
    assert len(stamp_images) == 32
    batch = frame_encoder.encode_frames(stamp_images)
    for i in (0, 13, 31):
        alone = frame_encoder.encode_frames([stamp_images[i]])[0]
        assert float(alone @ batch[i]) >= 0.9999
    # and the batch really holds different images, so the check above is meaningful
    assert float(batch[0] @ batch[13]) < 0.95


def test_koala_stamp_is_tagged_koala(
    frame_encoder: FrameEncoder, stamps_dir: Path, image_loader: Callable[[Path], np.ndarray]
) -> None:
    koala = image_loader(stamps_dir / "animals" / "marsupials" / "koala.png")
    tags = frame_encoder.tag_frames([koala], top_k=5)[0]
    assert len(tags) == 5
    assert tags[0].label == "koala"
    scores = [t.score for t in tags]
    assert scores == sorted(scores, reverse=True) and 0.0 < sum(scores) <= 1.0 + 1e-6


def test_car_wheel_stamp_is_tagged_wheel(
    frame_encoder: FrameEncoder, stamp_pngs: list[Path], image_loader: Callable[[Path], np.ndarray]
) -> None:
    wheel = next(p for p in stamp_pngs if p.name == "7spoke256.png")
    labels = [t.label for t in frame_encoder.tag_frames([image_loader(wheel)], top_k=3)[0]]
    assert "car wheel" in labels


def test_same_object_closer_than_other_category(
    frame_encoder: FrameEncoder, stamps_dir: Path, image_loader: Callable[[Path], np.ndarray]
) -> None:
    """Koala and wombat (both marsupial photos-like drawings) are closer than koala and a car wheel."""
    koala = image_loader(stamps_dir / "animals" / "marsupials" / "koala.png")
    wombat = image_loader(stamps_dir / "animals" / "marsupials" / "wombat.png")
    wheel = next(stamps_dir.rglob("7spoke256.png"))
    v = frame_encoder.encode_frames([koala, wombat, image_loader(wheel)])
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])


def test_video_frame_and_alpha_and_grey_inputs(frame_encoder: FrameEncoder, bigbuckbunny: Path) -> None:
    import av

    with av.open(str(bigbuckbunny)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape == (720, 1280, 3)
    rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], axis=2)
    grey = frame.mean(axis=2).astype(np.uint8)
    v = frame_encoder.encode_frames([frame, rgba, grey])
    assert float(v[0] @ v[1]) >= 0.9999  # opaque alpha changes nothing
    assert 0.5 < float(v[0] @ v[2]) < 0.9999  # grey is similar but not identical


def test_encode_and_tag_matches_separate_calls(
    frame_encoder: FrameEncoder, stamp_images: list[np.ndarray]
) -> None:
    vecs, tags = frame_encoder.encode_and_tag(stamp_images[:2], top_k=2)
    np.testing.assert_allclose(vecs, frame_encoder.encode_frames(stamp_images[:2]), atol=1e-5)
    assert [t.label for t in tags[0]] == [
        t.label for t in frame_encoder.tag_frames(stamp_images[:1], top_k=2)[0]
    ]


def test_bad_frames_raise_clear_errors(frame_encoder: FrameEncoder) -> None:
    assert frame_encoder.encode_frames([]).shape == (0, 1280)
    with pytest.raises(TypeError, match="frame 1: expected uint8"):
        frame_encoder.encode_frames([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="frame 0: expected an HxWx3"):
        frame_encoder.encode_frames([np.zeros((8, 8, 5), np.uint8)])


@pytest.mark.gpu
def test_cuda_half_matches_cpu(frame_encoder: FrameEncoder, stamp_images: list[np.ndarray]) -> None:
    from encoders.bundled.frames_effnet import EfficientNetFrameEncoder

    gpu = EfficientNetFrameEncoder(device="cuda")
    a, b = frame_encoder.encode_frames(stamp_images[:8]), gpu.encode_frames(stamp_images[:8])
    assert np.min(np.sum(a * b, axis=1)) >= 0.995
