"""Adapters for models kept on a hub or in a local folder (transformers / sentence-transformers).

``make_role`` is the one entry point the model registry calls. Nothing here downloads: a hub
id must already be in the local Hugging Face cache, otherwise :class:`HubModelError` says how
to fetch it on a networked machine and pass the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from encoders.hub.errors import HubModelError

if TYPE_CHECKING:
    from encoders.base import AudioEncoder, CrossModalTextTower, FrameEncoder, SpeechRecognizer, TextEncoder

ROLES = ("frames", "audio", "text", "speech")

__all__ = ["ROLES", "HubModelError", "make_role"]


def make_role(
    role: str, source: str, device: str = "auto", labels: Sequence[str] | None = None
) -> (
    tuple[FrameEncoder, CrossModalTextTower | None]
    | tuple[AudioEncoder, CrossModalTextTower | None]
    | TextEncoder
    | SpeechRecognizer
):
    """Load the model for one role from a hub id or folder.

    "frames" -> (FrameEncoder, its text tower); "audio" -> (AudioEncoder, its text tower);
    "text" -> TextEncoder; "speech" -> SpeechRecognizer. ``labels`` (frames only) is the
    vocabulary for zero-shot visual tags; without it ``tag_frames`` returns no tags.
    """
    built: Any
    if role == "frames":
        from encoders.hub.clip import ClipFrameEncoder

        frames = ClipFrameEncoder(source, device=device, labels=labels)
        built = (frames, frames.text_tower())
    elif role == "audio":
        from encoders.hub.clap import ClapAudioEncoder

        audio = ClapAudioEncoder(source, device=device)
        built = (audio, audio.text_tower())
    elif role == "text":
        from encoders.hub.sentence import SentenceTextEncoder

        built = SentenceTextEncoder(source, device=device)
    elif role == "speech":
        from encoders.hub.whisper import WhisperRecognizer

        built = WhisperRecognizer(source, device=device)
    else:
        raise HubModelError(role, source, f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return built
