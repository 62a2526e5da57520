"""A small real library for the CLI tests: three text-only items (bundled text model), a trained
fusion checkpoint and one user's events, built once per module; plus files in bad encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrec import Library

# Values for each positional argument name, by role: "ok" is a valid value, "missing" a path that is
# not there (for path arguments). A new command with a new argument name fails test_arguments_known.
LATIN1_TEXT = "user_id,item_id,text,timestamp\nren\xe9,a1,tr\xe8s bien,1700000000\n"


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("files")
    (root / "media").mkdir()
    (root / "empty-media").mkdir()
    (root / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "latin1.csv").write_bytes(LATIN1_TEXT.encode("latin-1"))
    (root / "latin1.txt").write_bytes("tr\xe8s bien\n".encode("latin-1"))
    (root / "utf16.csv").write_bytes(
        "user_id,item_id,event,timestamp\nu1,a1,like,1700000000\n".encode("utf-16")
    )
    (root / "manifest.jsonl").write_text(
        '{"item_id": "a1", "title": "A brown dog runs in the park", "tags": ["animals"]}\n'
        '{"item_id": "a2", "title": "How to cook pasta at home", "tags": ["food"]}\n'
        '{"item_id": "a3", "title": "Fire trucks and red buses", "tags": ["vehicles"]}\n',
        encoding="utf-8",
    )
    (root / "latin1-manifest.csv").write_bytes("item_id,title\nb1,caf\xe9\n".encode("latin-1"))
    return {p.name: p for p in root.iterdir()}


@pytest.fixture(scope="session")
def library(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three text-only items, a trained fusion checkpoint and one user's events."""
    path = tmp_path_factory.mktemp("lib") / "library"
    with Library(path, device="cpu") as lib:
        lib.encode(files["empty-media"], metadata=files["manifest.jsonl"], workers=1, progress=False)
        lib.train_fusion(epochs=1)
        lib.add_events([{"user_id": "u1", "item_id": "a1", "event": "like", "timestamp": 1.7e9}])
    return path
