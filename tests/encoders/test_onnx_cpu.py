"""ONNX Runtime on CPU gives the same vectors and tags as eager torch, and its export cache is robust."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.onnx_cpu import RUNTIME_ENV, cpu_runtime, export_path


@pytest.fixture(scope="module")
def torch_frame_encoder() -> object:
    from encoders.bundled.frames_effnet import EfficientNetFrameEncoder

    return EfficientNetFrameEncoder(device="cpu", runtime="torch")


def test_runtime_choice_and_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    assert cpu_runtime() == "onnx"
    monkeypatch.setenv(RUNTIME_ENV, "Torch")
    assert cpu_runtime() == "torch"
    assert cpu_runtime("onnx") == "onnx"  # an explicit choice beats the environment
    monkeypatch.setenv(RUNTIME_ENV, "tensorrt")
    with pytest.raises(ValueError, match=f"{RUNTIME_ENV}='tensorrt'.*onnx, torch"):
        cpu_runtime()


def test_frames_onnx_matches_torch_on_real_stamps(
    frame_encoder: object,
    torch_frame_encoder: object,
    stamp_pngs: list[Path],
    image_loader: Callable[[Path], np.ndarray],
) -> None:
    assert frame_encoder.runtime == "onnx" and torch_frame_encoder.runtime == "torch"
    images = [image_loader(p) for p in stamp_pngs[:: max(1, len(stamp_pngs) // 20)][:20]]
    fast, fast_tags = frame_encoder.encode_and_tag(images)
    ref, ref_tags = torch_frame_encoder.encode_and_tag(images)
    cos = np.sum(fast * ref, axis=1)
    assert cos.min() >= 0.9999, cos
    assert [t[0].label for t in fast_tags] == [t[0].label for t in ref_tags]
    for a, b in zip(fast_tags, ref_tags, strict=True):
        assert abs(a[0].score - b[0].score) < 1e-3
    # the images really differ, so agreement is not trivial
    assert float(fast[0] @ fast[-1]) < 0.95


def test_audio_onnx_matches_torch_on_real_sound(
    audio_encoder: object, lena_dir: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    from encoders.bundled.audio_aisfx import AisfxAudioEncoder

    reference = AisfxAudioEncoder(device="cpu", runtime="torch")
    assert audio_encoder.runtime == "onnx"
    waves = [audio_decoder(lena_dir / n, 44100, max_seconds=6.0) for n in ("lena.wav", "lena.mp3")]
    cos = np.sum(audio_encoder.encode_audio(waves) * reference.encode_audio(waves), axis=1)
    assert cos.min() >= 0.9999, cos


def test_export_is_cached_and_a_damaged_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lena_dir: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    from encoders.bundled.audio_aisfx import MODEL_NAME, AisfxAudioEncoder

    monkeypatch.setenv("MMREC_CACHE", str(tmp_path))
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    wave = audio_decoder(lena_dir / "lena.wav", 44100, max_seconds=3.0)
    first = AisfxAudioEncoder(device="cpu")
    exported = sorted((tmp_path / "onnx").glob(f"{MODEL_NAME}-*.onnx"))
    assert first.runtime == "onnx" and len(exported) == 1
    assert not list((tmp_path / "onnx").glob(".*.tmp"))  # the temporary export was published or removed
    stamp = exported[0].stat().st_mtime_ns
    again = AisfxAudioEncoder(device="cpu")
    assert again.runtime == "onnx" and exported[0].stat().st_mtime_ns == stamp  # reused, not re-exported
    expected = first.encode_audio([wave])

    exported[0].write_bytes(b"not an onnx model")  # e.g. a disk filled up during an old export
    killed = exported[0].with_name(f".{exported[0].name}.999999.tmp")  # an exporter killed mid-write
    killed.write_bytes(b"half")
    repaired = AisfxAudioEncoder(device="cpu")
    assert repaired.runtime == "onnx" and exported[0].stat().st_size > 1_000_000
    assert not killed.exists()
    np.testing.assert_allclose(repaired.encode_audio([wave]), expected, atol=1e-5)


def test_failed_export_falls_back_to_torch_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lena_dir: Path, audio_decoder: Callable[..., np.ndarray]
) -> None:
    from encoders.bundled.audio_aisfx import AisfxAudioEncoder

    monkeypatch.setenv("MMREC_CACHE", str(tmp_path))
    monkeypatch.delenv(RUNTIME_ENV, raising=False)

    def broken_export(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.warns(RuntimeWarning, match="aisfx.*exporter exploded.*eager torch"):
        enc = AisfxAudioEncoder(device="cpu")
    assert enc.runtime == "torch"
    assert not list((tmp_path / "onnx").glob("*.onnx"))  # nothing half-made is left to be loaded later
    vec = enc.encode_audio([audio_decoder(lena_dir / "lena.wav", 44100, max_seconds=3.0)])
    assert vec.shape == (1, 512) and np.isfinite(vec).all()


def test_export_path_names_the_torch_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMREC_CACHE", str(tmp_path))
    path = export_path("model-v1-abc")
    assert path.parent == tmp_path / "onnx"
    assert torch.__version__.split("+")[0] in path.name
