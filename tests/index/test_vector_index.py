"""VectorIndex behaviour on clustered synthetic embeddings: exactness, updates, filters, persistence."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from mmrec.index import VectorIndex, VectorIndexError, choose_factory
from mmrec.index.atomic import backup_path

DIM = 32


def clustered(n: int, seed: int = 0, centres: int = 20) -> np.ndarray:
    """Unit vectors around a few centres, like real embeddings (not uniform noise)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, DIM))
    x = c[rng.integers(centres, size=n)] + 0.5 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_top(vecs: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(q @ vecs.T), axis=1, kind="stable")[:, :k]]


@pytest.fixture(scope="module", autouse=True)
def _threads() -> None:
    faiss.omp_set_num_threads(1)


@pytest.mark.parametrize("factory", ["Flat", "HNSW32,Flat", "IVF16,Flat"])
def test_recall_against_brute_force(factory: str) -> None:
    vecs = clustered(2000)
    ids = np.arange(2000, dtype=np.int64) * 7 + 100
    index = VectorIndex.create(DIM, 2000, factory=factory)
    index.add(ids, vecs)
    q = clustered(50, seed=1)
    scores, got = index.search(q, 10)
    truth = brute_top(vecs, ids, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
    if factory == "Flat":
        assert recall == 1.0
        np.testing.assert_allclose(scores, np.sort(q @ vecs.T, axis=1)[:, ::-1][:, :10], atol=1e-5)
    else:
        assert recall >= 0.9, recall
    assert index.describe()["ntotal"] == 2000 and index.describe()["factory"] == factory


@pytest.mark.parametrize("factory", ["Flat", "HNSW32,Flat", "IVF16,Flat"])
def test_upsert_and_remove_change_results(factory: str) -> None:
    vecs = clustered(1000)
    ids = np.arange(1000, dtype=np.int64)
    index = VectorIndex.create(DIM, 1000, factory=factory)
    index.add(ids, vecs)
    target = clustered(1, seed=5)
    assert index.search(target, 1)[1][0, 0] != 999
    index.upsert([999], target)  # move item 999 onto the query
    scores, got = index.search(target, 3)
    assert got[0, 0] == 999 and scores[0, 0] == pytest.approx(1.0, abs=1e-4)
    assert len(index) == 1000
    index.remove([999, 5000])
    assert 999 not in set(index.search(target, 20)[1][0]) and len(index) == 999
    with pytest.raises(VectorIndexError, match="already in the index"):
        index.add([3], vecs[:1])


def test_hnsw_compacts_after_many_removals() -> None:
    vecs = clustered(3000)
    index = VectorIndex.create(DIM, 3000, factory="HNSW16,Flat")
    index.add(np.arange(3000), vecs)
    index.remove(np.arange(2000))
    assert index.describe()["dead"] == 0 and len(index) == 1000  # compaction happened
    _, got = index.search(vecs[2500:2501], 1)
    assert got[0, 0] == 2500


@pytest.mark.parametrize("factory", ["Flat", "HNSW32,Flat", "IVF16,Flat"])
def test_filtered_search_returns_only_allowed(factory: str) -> None:
    vecs = clustered(3000)
    ids = np.arange(3000, dtype=np.int64) + 10
    index = VectorIndex.create(DIM, 3000, factory=factory)
    index.add(ids, vecs)
    q = clustered(5, seed=2)
    for allowed in (ids[::3], ids[:7], ids[::2][:5000]):
        scores, got = index.search(q, 10, allowed=allowed)
        real = got[got >= 0]
        assert set(real.tolist()) <= set(allowed.tolist())
        if factory != "IVF16,Flat":  # IVF probes a subset of lists; graph/flat should be exact enough
            truth = brute_top(vecs[np.isin(ids, allowed)], allowed, q, min(10, len(allowed)))
            assert (
                np.mean([len(set(a) & set(b)) for a, b in zip(got, truth, strict=True)])
                >= 0.9 * truth.shape[1]
            )
    scores, got = index.search(q, 10, allowed=ids[:3])
    assert (got[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


def test_auto_choice_switches_at_threshold() -> None:
    assert choose_factory(DIM, 999, exact_threshold=1000) == "Flat"
    assert choose_factory(DIM, 1000, exact_threshold=1000) == "HNSW32,Flat"
    # 10M x 512: 16,384 lists found through an HNSW graph, 8 dimensions per PQ byte, codes on disk
    assert choose_factory(512, 10_000_000, memory_budget_bytes=1 << 30) == "ondisk:IVF16384_HNSW32,PQ64"
    assert choose_factory(3328, 1_000_000, memory_budget_bytes=1 << 30) == "ondisk:IVF4096,PQ416"
    assert choose_factory(384, 200_000, memory_budget_bytes=1 << 20) == "ondisk:IVF2048,PQ48"
    small = VectorIndex.create(DIM, 999, exact_threshold=1000)
    big = VectorIndex.create(DIM, 1000, exact_threshold=1000)
    assert small.describe()["factory"] == "Flat" and big.describe()["factory"] == "HNSW32,Flat"
    with pytest.raises(VectorIndexError, match="factory 'Nonsense"):
        VectorIndex.create(DIM, 10, factory="Nonsense12")


def test_ivf_pq_trains_on_first_batch_and_rejects_tiny_sample() -> None:
    index = VectorIndex.create(DIM, 10, factory="IVF8,PQ8x4")
    with pytest.raises(VectorIndexError, match="needs at least"):
        index.add(np.arange(10), clustered(10))
    index.add(np.arange(2000), clustered(2000))
    assert index.is_trained and len(index) == 2000


@pytest.mark.parametrize("factory", ["Flat", "HNSW32,Flat"])
def test_save_load_round_trip(tmp_path: Path, factory: str) -> None:
    vecs = clustered(500)
    index = VectorIndex.create(DIM, 500, factory=factory)
    index.add(np.arange(500) * 3, vecs)
    index.remove([0, 3])
    index.meta["seq"] = 42
    index.save(tmp_path / "index")
    loaded = VectorIndex.load(tmp_path / "index")
    q = clustered(10, seed=3)
    for a, b in zip(index.search(q, 5), loaded.search(q, 5), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.meta == {"seq": 42} and len(loaded) == 498 and 0 not in loaded
    loaded.upsert([3], vecs[:1])
    assert loaded.search(vecs[:1], 1)[1][0, 0] == 3


def test_bad_input_is_named(tmp_path: Path) -> None:
    index = VectorIndex.create(DIM, 10)
    with pytest.raises(VectorIndexError, match=r"vectors: shape \(2, 5\)"):
        index.add([1, 2], np.ones((2, 5)))
    with pytest.raises(VectorIndexError, match="duplicates"):
        index.add([1, 1], clustered(2))
    with pytest.raises(VectorIndexError, match=r"queries: shape"):
        index.search(np.ones((1, 3)), 1)
    (tmp_path / "broken").mkdir()
    with pytest.raises(VectorIndexError, match="broken: not a readable index folder"):
        VectorIndex.load(tmp_path / "broken")


def _save_then_die(folder: str) -> None:
    """Child process: write a whole new version, get killed just before it is published."""
    import mmrec.index.atomic as atomic

    def dying_replace(src: str | Path, dst: str | Path) -> None:
        os._exit(9)  # killed between writing the version and switching the pointer

    atomic.os.replace = dying_replace  # type: ignore[assignment]
    index = VectorIndex.create(DIM, 10)
    index.add(np.arange(10) + 1000, clustered(10, seed=9))
    index.save(folder)


def test_interrupted_save_keeps_previous_index(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    old = VectorIndex.create(DIM, 100)
    old.add(np.arange(100), clustered(100))
    old.save(folder)
    ctx = mp.get_context("fork")
    child = ctx.Process(target=_save_then_die, args=(str(folder),))
    child.start()
    child.join(60)
    assert child.exitcode == 9
    versions = sorted(p.name for p in folder.glob("v-*"))
    assert len(versions) == 2 and list(folder.glob(".tmp-*.pointer"))  # the crash window really was hit
    before = sorted(p.name for p in folder.iterdir())
    recovered = VectorIndex.load(folder)
    assert len(recovered) == 100 and recovered.ids()[-1] == 99
    assert sorted(p.name for p in folder.iterdir()) == before  # loading repaired nothing
    recovered.save(folder)  # the next writer removes the dead writer's leftovers
    assert len(list(folder.glob("v-*"))) == 2 and not list(folder.glob(".tmp-*"))
    assert len(VectorIndex.load(folder)) == 100


def test_earlier_layout_is_read_as_is_and_converted_by_the_next_save(tmp_path: Path) -> None:
    """Files directly in the folder, or left in ``<folder>.previous`` between the old two renames."""
    index = VectorIndex.create(DIM, 50)
    index.add(np.arange(50), clustered(50))
    index.save(tmp_path / "new")
    (version,) = (tmp_path / "new").glob("v-*")
    backup = backup_path(tmp_path / "index")
    shutil.copytree(version, backup)
    assert len(VectorIndex.load(tmp_path / "index")) == 50
    assert not (tmp_path / "index").exists() and backup.exists()  # a reader moved nothing
    index.save(tmp_path / "index")
    assert (tmp_path / "index" / "CURRENT").exists() and not backup.exists()
    assert not list((tmp_path / "index").glob("*.faiss"))
    shutil.copytree(version, tmp_path / "flat")
    assert len(VectorIndex.load(tmp_path / "flat")) == 50


def test_failure_while_writing_leaves_old_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "index"
    old = VectorIndex.create(DIM, 100)
    old.add(np.arange(100), clustered(100))
    old.save(folder)
    new = VectorIndex.create(DIM, 100)
    new.add(np.arange(5), clustered(5))

    def broken_write(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken_write)
    with pytest.raises(OSError, match="disk full"):
        new.save(folder)
    monkeypatch.undo()
    assert len(VectorIndex.load(folder)) == 100
    assert not list(folder.glob(".tmp-*")) and len(list(folder.glob("v-*"))) == 1


def test_concurrent_searches_during_upserts() -> None:
    import threading

    vecs = clustered(2000)
    index = VectorIndex.create(DIM, 2000, factory="HNSW16,Flat")
    index.add(np.arange(2000), vecs)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for i in range(100):
                _, got = index.search(vecs[i : i + 1], 5)
                assert got[0, 0] >= 0
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for start in range(0, 400, 20):
        index.upsert(np.arange(start, start + 20), clustered(20, seed=start + 100))
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == 2000
    moved = clustered(20, seed=100)
    assert index.search(moved[:1], 1)[1][0, 0] == 0
