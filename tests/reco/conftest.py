"""Fixtures for tests/reco: a real small library of tuxpaint stamps (captions embedded with e5, fused).

Each stamp becomes an image item whose ``text`` block is its English caption and whose ``tags`` block
is its sub-folder name (e.g. "mammals", "cycle"), both embedded with multilingual-e5-small, fused with
the default attention fusion and committed through ``mmrec.store.LibraryStore``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CATEGORIES = {"animals": 36, "vehicles": 30, "food": 24, "plants": 16}


@dataclass
class StampLibrary:
    path: Path
    store: object
    index: object
    fusion: object
    by_category: dict[str, list[str]]  # category -> item ids
    captions: dict[str, str]

    def embed_query(self, text: str) -> np.ndarray:
        """A text query in the fused space (text and tags blocks), as the CLI builds it."""
        q = _encoder().encode_text([text], role="query")[0]
        return self.fusion.query_vector({"text": q, "tags": q})


_ENC = None


def _encoder():  # noqa: ANN202 - E5TextEncoder
    global _ENC
    if _ENC is None:
        from encoders.bundled.text_e5 import E5TextEncoder

        _ENC = E5TextEncoder()
    return _ENC


def caption(txt: Path) -> tuple[str, str]:
    """English caption (first line) and the zh_CN translation (or "") of a tuxpaint name file."""
    lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    zh = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("zh_CN.utf8=")), "")
    return lines[0].strip(), zh.strip()


def _library_dims() -> dict[str, int]:
    """The block layout ``mmrec encode`` gives a bundled library (so CLI queries match), else text + tags."""
    try:
        from encoders.registry import load_models
        from pipelines.fusion_select import modality_dims
    except ImportError:
        return {"text": 384, "tags": 384}
    return modality_dims(load_models("bundled", device="cpu"))


class ExactIndex:
    """Stand-in used only until mmrec.index.LibraryIndex lands: exact inner product with FAISS."""

    def __init__(self, store) -> None:  # noqa: ANN001
        import faiss

        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(int(next(store.iter_fused())[1].shape[1])))
        for keys, vecs in store.iter_fused():
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), keys.astype(np.int64))

    def search(self, queries: np.ndarray, k: int, allowed_keys=None):  # noqa: ANN001, ANN201
        k = min(k, self.index.ntotal)
        return self.index.search(np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32), k)


def open_index(store):  # noqa: ANN001, ANN201
    try:
        from mmrec.index import LibraryIndex
    except ImportError:
        return ExactIndex(store)
    index = LibraryIndex.open(store)
    index.sync()
    return index


@pytest.fixture(scope="session")
def stamp_library(stamps_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StampLibrary:
    from mmrec.fusion.fusion import Fusion
    from mmrec.store import EncodedItem, ItemRecord, LibraryStore

    rows: list[tuple[str, Path, str, str, str]] = []
    by_category: dict[str, list[str]] = {}
    for cat, n in CATEGORIES.items():
        # Round-robin over sub-categories so each category is represented broadly (mammals, birds, fish...).
        groups: dict[str, list[Path]] = {}
        for txt in sorted((stamps_dir / cat).rglob("*.txt")):
            rel = txt.relative_to(stamps_dir)
            if txt.with_suffix(".png").exists() and len(rel.parts) >= 3:
                groups.setdefault(rel.parts[1], []).append(txt)
        picked: list[Path] = []
        while len(picked) < n and any(groups.values()):
            for g in sorted(groups):
                if groups[g] and len(picked) < n:
                    picked.append(groups[g].pop(0))
        for txt in picked:
            rel = txt.relative_to(stamps_dir).with_suffix("")
            en, _ = caption(txt)
            # Tag = the sub-category folder ("mammals", "cycle"), like a user tag on the item.
            rows.append((str(rel), txt.with_suffix(".png"), en, cat, rel.parts[1]))
            by_category.setdefault(cat, []).append(str(rel))
    enc = _encoder()
    text = enc.encode_text([r[2] for r in rows])
    tags = enc.encode_text([r[4] for r in rows])
    fusion = Fusion(_library_dims(), device="cpu")
    blocks = [{"text": text[i : i + 1], "tags": tags[i : i + 1]} for i in range(len(rows))]
    fused, weights = fusion.fuse(blocks)
    path = tmp_path_factory.mktemp("reco") / "library"
    store = LibraryStore.open(path)
    items = [
        EncodedItem(
            record=ItemRecord(item_id=r[0], path=str(r[1]), kind="image", title=r[2], tags=[r[4]]),
            vectors=blocks[i],
            fused=fused[i],
            weights=weights[i],
        )
        for i, r in enumerate(rows)
    ]
    store.commit_items(items, fusion_version=fusion.version)
    return StampLibrary(
        path=path,
        store=store,
        index=open_index(store),
        fusion=fusion,
        by_category=by_category,
        captions={r[0]: r[2] for r in rows},
    )


@pytest.fixture(scope="session")
def analyzer():  # noqa: ANN201 - BundledAnalyzer
    from encoders.comments import load_analyzer

    return load_analyzer("bundled")
