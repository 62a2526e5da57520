"""Model registry: profiles, config files, lazy loading, and errors that name the bad field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from encoders.base import TextEncoder
from encoders.registry import HUB_DEFAULTS, ModelConfigError, load_models


def test_bundled_profile_describes_four_roles_without_loading() -> None:
    models = load_models("bundled", device="cpu")
    info = models.describe()
    assert models.profile == "bundled"
    assert set(info) == {"frames", "audio", "text", "speech"}
    assert {r: info[r]["dim"] for r in info} == {"frames": 1280, "audio": 512, "text": 384, "speech": 0}
    assert models.loaded_roles() == []  # describing did not load anything slow


def test_roles_load_lazily_once_and_match_static_description(caption_pairs: list[tuple[str, str]]) -> None:
    models = load_models("bundled", device="cpu")
    static = models.describe()["text"]
    text = models.text
    assert isinstance(text, TextEncoder) and models.text is text
    assert models.loaded_roles() == ["text"]
    assert text.info.to_dict() == static
    vec = text.encode_text([caption_pairs[0][0]])
    assert vec.shape == (1, 384) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert models.frame_text is None  # bundled frames have no text tower (loads the frame model)
    assert models.loaded_roles() == ["frames", "text"]
    assert models.frames.info.dim == 1280


def test_hub_profile_uses_default_sources() -> None:
    models = load_models("hub", device="cpu")
    assert models.profile == "hub" and models.sources == HUB_DEFAULTS
    assert models.loaded_roles() == []


def test_config_file_routes_roles_to_hub_and_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import encoders.hub

    calls: list[tuple[str, str, str]] = []

    def fake_make_role(role: str, source: str, device: str = "auto") -> object:
        calls.append((role, source, device))
        return ("frame-encoder", "clip-text-tower") if role in ("frames", "audio") else "text-encoder"

    monkeypatch.setattr(encoders.hub, "make_role", fake_make_role)
    cfg = tmp_path / "models.toml"
    cfg.write_text('[models]\nframes = "some/clip-model"\ntext = "hub"\n', encoding="utf-8")
    models = load_models(str(cfg), device="cpu")
    assert models.sources == {
        "frames": "some/clip-model",
        "audio": "bundled",
        "text": HUB_DEFAULTS["text"],
        "speech": "bundled",
    }
    assert models.frames == "frame-encoder" and models.frame_text == "clip-text-tower"
    assert models.text == "text-encoder"
    assert calls == [("frames", "some/clip-model", "cpu"), ("text", HUB_DEFAULTS["text"], "cpu")]


def test_missing_hub_model_fails_clearly_without_download(tmp_path: Path) -> None:
    from encoders.hub.errors import HubModelError

    cfg = tmp_path / "models.json"
    cfg.write_text(json.dumps({"text": str(tmp_path / "no-such-model")}), encoding="utf-8")
    models = load_models(str(cfg), device="cpu")
    with pytest.raises(HubModelError, match="no-such-model"):
        _ = models.text


@pytest.mark.parametrize(
    ("content", "suffix", "pattern"),
    [
        ({"frames": "bundled", "vidoe": "x"}, ".json", r"field 'vidoe': unknown role"),
        (
            {"audio": 3},
            ".json",
            r"field 'audio': expected 'bundled', a hub model id or a local folder, got 3",
        ),
        ({"text": "  "}, ".json", r"field 'text'"),
        ("{not json", ".json", r"not valid JSON"),
        ('frames = "bundled"\nbad toml', ".toml", r"not valid TOML"),
        (["frames"], ".json", r"expected a table"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, content: object, suffix: str, pattern: str) -> None:
    cfg = tmp_path / f"models{suffix}"
    cfg.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(ModelConfigError, match=pattern) as info:
        load_models(str(cfg))
    assert str(cfg) in str(info.value)


def test_unknown_profile_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="unknown model profile"):
        load_models("bundeld")
    with pytest.raises(ModelConfigError, match="does not exist"):
        load_models(str(tmp_path / "absent.json"))
    with pytest.raises(ModelConfigError, match="is a folder"):
        load_models(str(tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_fails_at_load_time() -> None:
    with pytest.raises(RuntimeError, match="device 'cuda' was requested"):
        load_models("bundled", device="cuda")
