"""make_role and offline source resolution: what each role returns and how missing models fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from encoders.base import AudioEncoder, CrossModalTextTower, FrameEncoder, SpeechRecognizer, TextEncoder
from encoders.hub import HubModelError, make_role
from encoders.hub.source import resolve_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_frames_role(clip_dir: Path, stamp_frames: list[np.ndarray]) -> None:
    frames, tower = make_role("frames", str(clip_dir), device="cpu", labels=["kangaroo", "cat"])
    assert isinstance(frames, FrameEncoder) and isinstance(tower, CrossModalTextTower)
    assert tower.target_modality == "frames" and tower.info.dim == frames.info.dim
    assert tower._m is frames._m  # one loaded model serves both
    tags = frames.tag_frames(stamp_frames[:1], top_k=5)[0]
    assert sorted(t.label for t in tags) == ["cat", "kangaroo"]


def test_audio_role(clap_dir: Path) -> None:
    audio, tower = make_role("audio", str(clap_dir), device="cpu")
    assert isinstance(audio, AudioEncoder) and isinstance(tower, CrossModalTextTower)
    assert tower.target_modality == "audio" and tower.info.dim == audio.info.dim


def test_text_and_speech_roles(sentence_dir: Path, whisper_random_dir: Path) -> None:
    assert isinstance(make_role("text", str(sentence_dir), device="cpu"), TextEncoder)
    assert isinstance(make_role("speech", str(whisper_random_dir), device="cpu"), SpeechRecognizer)


def test_missing_folder_names_role_source_and_remedy(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(HubModelError) as err:
        make_role("frames", str(missing), device="cpu")
    msg = str(err.value)
    assert err.value.role == "frames" and err.value.source == str(missing)
    assert "frames model" in msg and str(missing) in msg and "does not exist" in msg


def test_uncached_hub_id_says_how_to_download() -> None:
    with pytest.raises(HubModelError) as err:
        make_role("text", "mmrec-tests/not-a-real-model", device="cpu")
    msg = str(err.value)
    assert isinstance(err.value, RuntimeError)
    assert "text model 'mmrec-tests/not-a-real-model'" in msg
    assert "huggingface-cli download mmrec-tests/not-a-real-model" in msg


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(HubModelError, match=r"speech model .*no config\.json"):
        make_role("speech", str(tmp_path), device="cpu")


def test_broken_weights_are_a_hub_error(clip_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-clip"
    shutil.copytree(clip_dir, broken)
    (broken / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(HubModelError, match=r"frames model 'broken-clip'.*weights"):
        make_role("frames", str(broken), device="cpu")


def test_unknown_role(clip_dir: Path) -> None:
    with pytest.raises(HubModelError, match="unknown role 'video'"):
        make_role("video", str(clip_dir))


def test_cached_hub_id_resolves_offline(
    sentence_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id already in the Hugging Face cache loads without network, named by its id and commit."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--mmrec-tests--tiny-e5"
    shutil.copytree(sentence_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    src = resolve_source("text", "mmrec-tests/tiny-e5")
    assert src.name == "mmrec-tests/tiny-e5" and src.revision == COMMIT
    enc = make_role("text", "mmrec-tests/tiny-e5", device="cpu")
    assert enc.info.model == "mmrec-tests/tiny-e5" and enc.info.extra["revision"] == COMMIT
    direct = make_role("text", str(sentence_dir), device="cpu")
    np.testing.assert_array_equal(enc.encode_text(["hello world"]), direct.encode_text(["hello world"]))


@pytest.mark.gpu
def test_cuda_roles_match_cpu(clap_dir: Path, sentence_dir: Path, whisper_de_dir: Path) -> None:
    """Half precision on CUDA stays within float tolerance of CPU float32."""
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(3 * 32000)).astype(np.float32)
    cpu_audio, _ = make_role("audio", str(clap_dir), device="cpu")
    gpu_audio, gpu_tower = make_role("audio", str(clap_dir), device="cuda")
    assert gpu_audio.info.device == "cuda" and gpu_tower.info.device == "cuda"
    assert float(cpu_audio.encode_audio([wave])[0] @ gpu_audio.encode_audio([wave])[0]) >= 0.999
    texts = ["a photo of a cat", "hello world"]
    cpu_text = make_role("text", str(sentence_dir), device="cpu").encode_text(texts)
    gpu_text = make_role("text", str(sentence_dir), device="cuda").encode_text(texts)
    assert gpu_text.dtype == np.float32 and np.min(np.sum(cpu_text * gpu_text, axis=1)) >= 0.999
    speech = make_role("speech", str(whisper_de_dir), device="cuda")
    assert speech.detect_language(wave[:16000])[0] == "de"  # type: ignore[attr-defined]
    longer = np.tile(wave[:16000], 3)
    out = speech.transcribe(wave[:16000])  # noise: the speech gate (VAD share) drops it before decoding
    assert not out.has_speech and out.gate is not None and out.gate.signals.vad_share is not None
    from encoders.hub.whisper import WhisperRecognizer
    from encoders.speech_gate import GateThresholds

    opened = GateThresholds(
        min_vad_share=0.0, min_avg_logprob=-np.inf, max_compression_ratio=np.inf, min_words=0
    )
    decoded = WhisperRecognizer(str(whisper_de_dir), device="cuda", thresholds=opened).transcribe(longer)
    assert decoded.language == "de" and decoded.has_speech and decoded.gate is not None
    assert decoded.gate.signals.avg_logprob is not None and decoded.gate.signals.avg_logprob > -1.0
