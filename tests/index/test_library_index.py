"""LibraryIndex against the real LibraryStore: build, catch-up after a missed save, rebuild, filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrec.fusion import Fusion
from mmrec.index import LibraryIndex
from mmrec.index.atomic import resolve
from mmrec.store import EncodedItem, ItemRecord, LibraryStore

DIMS = {"frames": 16, "audio": 8, "text": 12}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_items(fusion: Fusion, names: list[str], seed: int) -> list[EncodedItem]:
    """Items with real fused vectors (default fusion of random per-modality vectors)."""
    rng = np.random.default_rng(seed)
    raw = [
        {
            "frames": _unit(rng.normal(size=(4, 16))),
            "audio": _unit(rng.normal(size=(1, 8))),
            "text": _unit(rng.normal(size=(1, 12))),
        }
        for _ in names
    ]
    fused, weights = fusion.fuse(raw)
    return [
        EncodedItem(ItemRecord(name, None, "text", title=name), vecs, fused[i], weights[i])
        for i, (name, vecs) in enumerate(zip(names, raw, strict=True))
    ]


@pytest.fixture()
def store(tmp_path: Path):
    s = LibraryStore.open(tmp_path / "lib")
    yield s
    s.close()


@pytest.fixture(scope="module")
def fusion() -> Fusion:
    return Fusion(DIMS, device="cpu")


def test_open_builds_then_sync_catches_up_after_missed_save(store: LibraryStore, fusion: Fusion) -> None:
    items = make_items(fusion, [f"a{i}" for i in range(40)], seed=0)
    keys = store.commit_items(items, fusion.version)
    li = LibraryIndex.open(store)
    assert len(li) == 40 and li.describe()["factory"] == "Flat"
    _, got = li.search(items[7].fused, 1)
    assert got[0, 0] == keys[7]

    # the process "crashes" after these store commits, before any index save
    changed = make_items(fusion, ["a3"], seed=99)  # a3 gets a new vector, same key
    store.commit_items(changed, fusion.version)
    new = make_items(fusion, ["b0", "b1"], seed=5)
    new_keys = store.commit_items(new, fusion.version)
    deleted = store.delete_items(["a10", "a11"])

    reopened = LibraryIndex.open(store)  # loads index/ (stale) and applies changes_since
    assert reopened.seq > li.seq and len(reopened) == 40
    assert reopened.search(changed[0].fused, 1)[1][0, 0] == keys[3]
    assert reopened.search(new[1].fused, 1)[1][0, 0] == new_keys[1]
    hits = set(reopened.search(items[10].fused, 40)[1][0].tolist())
    assert not hits & set(deleted)
    assert reopened.sync() == {"upserted": 0, "removed": 0, "seq": reopened.seq}


def test_rebuild_with_factory_is_remembered_and_filters_work(store: LibraryStore, fusion: Fusion) -> None:
    items = make_items(fusion, [f"i{i}" for i in range(300)], seed=1)
    keys = np.array(store.commit_items(items, fusion.version))
    li = LibraryIndex.open(store)
    li.rebuild("HNSW16,Flat")
    li.save()  # what ``Library.reindex`` calls after a rebuild
    assert li.describe()["factory"] == "HNSW16,Flat"
    again = LibraryIndex.open(store)
    assert again.describe()["factory"] == "HNSW16,Flat" and len(again) == 300
    allowed = keys[::10]
    scores, got = again.search(np.stack([it.fused for it in items[:3]]), 5, allowed_keys=allowed)
    assert set(got[got >= 0].tolist()) <= set(allowed.tolist())
    assert got[0, 0] == keys[0]  # item 0 is allowed and is its own best match
    fused = np.stack([it.fused for it in items])
    truth = allowed[np.argsort(-(fused[[1]] @ fused[keys.searchsorted(allowed)].T), axis=1)[0, :5]]
    assert list(got[1]) == list(truth)


def test_refused_with_new_dimension_triggers_rebuild(store: LibraryStore, fusion: Fusion) -> None:
    items = make_items(fusion, [f"r{i}" for i in range(20)], seed=2)
    keys = store.commit_items(items, fusion.version)
    li = LibraryIndex.open(store)
    assert li.describe()["dim"] == fusion.dim
    smaller = Fusion({"audio": 8, "text": 12}, device="cpu")
    refused, weights = smaller.fuse([{m: it.vectors[m] for m in ("audio", "text")} for it in items])
    store.set_fused(keys, refused, weights, "v2")
    li.sync()
    assert li.describe()["dim"] == 20 and len(li) == 20
    assert li.search(refused[4], 1)[1][0, 0] == keys[4]


def test_empty_library_then_first_items(store: LibraryStore, fusion: Fusion) -> None:
    li = LibraryIndex.open(store)
    scores, got = li.search(np.ones(fusion.dim, dtype=np.float32), 3)
    assert (got == -1).all() and np.isneginf(scores).all()
    items = make_items(fusion, ["x", "y"], seed=3)
    keys = store.commit_items(items, fusion.version)
    assert li.sync()["upserted"] == 2
    assert li.search(items[1].fused, 1)[1][0, 0] == keys[1]
    assert resolve(Path(store.path) / "index") is not None  # saved
