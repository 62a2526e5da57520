"""The on-disk IVF-PQ index: chunked build from a vector file, memory-mapped shards, updates, choice, integrity."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from mmrec.check import check_library
from mmrec.fusion import Fusion
from mmrec.index import choice as choice_mod
from mmrec.index import integrity
from mmrec.index.atomic import resolve
from mmrec.index.choice import choose_index
from mmrec.index.integrity import file_record
from mmrec.index.library_index import LibraryIndex, load_index
from mmrec.index.ondisk import COARSE_EF, OnDiskIndex
from mmrec.index.vector_index import VectorIndexError
from mmrec.store import LibraryStore
from mmrec.store.vectors import VectorFile
from tests.index.test_library_index import DIMS, make_items

N, DIM, CENTRES = 20_000, 32, 200
FACTORY = "ondisk:IVF64,PQ8"
SHARD_BYTES = 120_000  # 8-byte codes + 8-byte ids: 7,500 vectors a shard, so 3 shards
RECALL_RERANKED = 0.9  # measured 0.99 on this data (nprobe 16 of 64 lists, 10x candidates re-scored)
RECALL_PQ_ONLY = 0.15  # 8-byte PQ codes of 32 dims, scores not re-ranked: measured 0.26


def clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors: a random centre of a Gaussian mixture on the sphere plus isotropic noise."""
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.06 * rng.standard_normal((n, DIM), dtype=np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[VectorFile, np.ndarray]:
    """A raw ``fused.f32`` written in chunks (as the store writes it) and 100 queries."""
    folder = tmp_path_factory.mktemp("vectors")
    vf = VectorFile.create(folder, "fused", DIM)
    c = np.random.default_rng(7).standard_normal((CENTRES, DIM), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    for start in range(0, N, 5000):
        vf.append(clustered(5000, start, c))
    return vf, clustered(100, 999, c)


def exact_top(vf: VectorFile, q: np.ndarray, k: int) -> np.ndarray:
    """Ground truth by a chunked brute-force scan (numpy, independent of FAISS)."""
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, N, 4096):
        rows = np.arange(start, min(N, start + 4096))
        s = q @ vf.stream(rows).T
        best_s, best_i = np.hstack([best_s, s]), np.hstack([best_i, np.broadcast_to(rows, s.shape)])
        top = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, top, 1), np.take_along_axis(best_i, top, 1)
    return best_i


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(t)) / len(t) for g, t in zip(got, truth, strict=True)]))


def batches(vf: VectorFile, size: int = 3000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, N, size):
        rows = np.arange(start, min(N, start + size))
        yield rows, vf.stream(rows)


@pytest.fixture(scope="module")
def built(data: tuple[VectorFile, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    vf, _ = data
    folder = tmp_path_factory.mktemp("idx") / "index"
    sample = vf.stream(np.sort(np.random.default_rng(0).choice(N, 3000, replace=False)))
    index = OnDiskIndex.build(DIM, FACTORY, sample, batches(vf), folder, max_shard_bytes=SHARD_BYTES)
    index.save(folder)
    return folder


def test_chunked_build_has_every_id_in_shards_and_recall(
    built: Path, data: tuple[VectorFile, np.ndarray]
) -> None:
    vf, q = data
    index = OnDiskIndex.load(built)
    assert index.describe()["shards"] == 3
    assert np.array_equal(index.ids(), np.arange(N))
    assert not any(p.name.endswith("-build") for p in built.iterdir())  # staging removed after publishing
    truth = exact_top(vf, q, 10)
    _, pq_only = index.search(q, 10)
    index.reranker = lambda ids: vf.take(ids)
    scores, got = index.search(q, 10)
    assert recall(pq_only, truth) >= RECALL_PQ_ONLY
    assert recall(got, truth) >= RECALL_RERANKED
    assert np.allclose(scores[:, 0], np.sum(q * vf.take(got[:, 0]), axis=1), atol=1e-5)  # exact scores


def test_hnsw_coarse_quantizer_keeps_recall_and_its_search_width(
    data: tuple[VectorFile, np.ndarray], tmp_path: Path
) -> None:
    """Large libraries find their lists through an HNSW graph (``IVF{k}_HNSW32``): built, saved and
    reloaded like the flat one, with the wider efSearch kept in the file."""
    vf, q = data
    folder = tmp_path / "index"
    sample = vf.stream(np.sort(np.random.default_rng(0).choice(N, 3000, replace=False)))
    index = OnDiskIndex.build(DIM, "ondisk:IVF64_HNSW32,PQ8", sample, batches(vf), folder)
    index.save(folder)
    again = OnDiskIndex.load(folder)
    coarse = faiss.downcast_index(faiss.extract_index_ivf(again._shards[0].index).quantizer)
    assert isinstance(coarse, faiss.IndexHNSWFlat) and coarse.hnsw.efSearch == COARSE_EF
    again.reranker = lambda ids: vf.take(ids)
    assert recall(again.search(q, 10)[1], exact_top(vf, q, 10)) >= RECALL_RERANKED


def test_reopened_lists_are_memory_mapped_and_search_the_same(
    built: Path, data: tuple[VectorFile, np.ndarray]
) -> None:
    _, q = data
    a, b = OnDiskIndex.load(built), load_index(built)
    assert isinstance(b, OnDiskIndex)
    for shard in b._shards:
        lists = faiss.extract_index_ivf(shard.index).invlists
        assert isinstance(faiss.downcast_InvertedLists(lists), faiss.OnDiskInvertedLists)
    assert np.array_equal(a.search(q, 10)[1], b.search(q, 10)[1])


def test_shards_hold_no_copy_of_the_centroids_and_format_1_still_reads(
    built: Path, data: tuple[VectorFile, np.ndarray], tmp_path: Path
) -> None:
    """``trained.faiss`` holds the one coarse quantiser; a shard file holds an empty placeholder (the
    centroids would repeat in every shard). A folder written before (format 1, full copies) searches the same."""
    _, q = data
    version = resolve(built)
    assert version is not None
    trained = faiss.read_index(str(version / "trained.faiss"))
    nlist = faiss.extract_index_ivf(trained).nlist
    for shard in sorted(version.glob("shard-*.faiss")):
        assert faiss.extract_index_ivf(faiss.read_index(str(shard))).quantizer.ntotal == 0
    expected = OnDiskIndex.load(built).search(q, 10)

    old = tmp_path / "index"
    shutil.copytree(built, old, symlinks=True)
    old_version = resolve(old)
    assert old_version is not None
    meta = json.loads((old_version / "meta.json").read_text())
    for name in [*meta["shards"], "delta"]:
        path = old_version / f"{name}.faiss"
        index = faiss.read_index(str(path))
        ivf = faiss.extract_index_ivf(index)
        ivf.own_fields = False
        ivf.quantizer = faiss.extract_index_ivf(trained).quantizer  # as format 1 wrote it: a full copy
        path.unlink()  # a hard link to the original version's file
        faiss.write_index(index, str(path))
        meta["files"][f"{name}.faiss"] = file_record(path)
    meta["format"] = 1
    (old_version / "meta.json").write_text(json.dumps(meta))
    first = old_version / f"{meta['shards'][0]}.faiss"
    assert faiss.extract_index_ivf(faiss.read_index(str(first))).quantizer.ntotal == nlist
    again = OnDiskIndex.load(old, verify="full")
    assert np.array_equal(again.search(q, 10)[1], expected[1])
    assert np.allclose(again.search(q, 10)[0], expected[0])


def test_remove_and_update_leave_no_stale_vector(
    built: Path, data: tuple[VectorFile, np.ndarray], tmp_path: Path
) -> None:
    vf, q = data
    folder = tmp_path / "index"
    shutil.copytree(built, folder, symlinks=True)
    index = OnDiskIndex.load(folder)
    _, before = index.search(q[:1], 10)
    gone = before[0, :3]
    moved = int(before[0, 5])
    assert index.remove(gone) == 3 and index.remove(gone) == 0
    far = -q[0]  # the moved item's new vector is the opposite of the query
    index.upsert([moved], far[None, :])
    index.add([N + 1], q[:1])  # a new item exactly at the query
    with pytest.raises(VectorIndexError, match="already in the index"):
        index.add([moved], q[:1])
    index.save(folder)
    current = {moved: far, N + 1: q[0]}  # what the store would hold now: the re-ranker reads it

    def stored(ids: np.ndarray) -> np.ndarray:
        return np.stack([current[int(i)] if int(i) in current else vf.take(np.array([i]))[0] for i in ids])

    for reopened in (index, OnDiskIndex.load(folder)):
        reopened.reranker = stored
        assert len(reopened) == N - 3 + 1
        _, got = reopened.search(q[:1], 50)
        assert got[0, 0] == N + 1
        assert not set(got[0].tolist()) & {*gone.tolist(), moved}
        _, opposite = reopened.search(far[None, :], 1)
        assert opposite[0, 0] == moved
        _, only = reopened.search(q[:1], 5, allowed=np.array([moved, int(before[0, 6]), *gone.tolist()]))
        assert only[0, :2].tolist() == [int(before[0, 6]), moved] and only[0, 2] == -1
    # the save linked the unchanged shard files instead of copying them
    version = resolve(folder)
    assert version is not None and (version / "shard-0000.faiss").stat().st_nlink >= 2

    # a shard more than half dead is rewritten without its dead ids at the next save
    first = np.asarray(index._shards[0].ids)
    elsewhere = sum(len(s.dead) for s in index._shards[1:])
    index.remove(first[: len(first) // 2 + 10])
    index.save(folder)
    again = OnDiskIndex.load(folder)
    assert "shard-0000" not in [s.name for s in again._shards]
    assert np.array_equal(again.ids(), index.ids()) and sum(len(s.dead) for s in again._shards) == elsewhere


def test_auto_choice_goes_on_disk_when_memory_is_short(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    roomy = choose_index(512, 1_000_000, available_bytes=64 << 30)
    assert roomy.factory == "HNSW32,Flat" and not roomy.on_disk
    # 13 GB raw, 0.4 GB of PQ codes: the codes go to shard files (re-ranked), cached when RAM allows
    codes = choose_index(3328, 1_000_000, available_bytes=8 << 30)
    assert codes.factory == "ondisk:IVF4096,PQ416" and "re-ranked with the stored vectors" in codes.reason
    tight = choose_index(3328, 1_000_000, available_bytes=200 << 20)
    assert tight.factory == "ondisk:IVF4096,PQ416" and "0.5 x 0.20 GiB available" in tight.reason

    monkeypatch.setattr(choice_mod, "available_memory", lambda: 64 << 10)  # a 64 KiB machine
    fusion = Fusion(DIMS, device="cpu")
    store = LibraryStore.open(tmp_path / "lib")
    try:
        items = make_items(fusion, [f"x{i}" for i in range(1200)], seed=3)
        keys = store.commit_items(items, fusion.version)
        with caplog.at_level(logging.INFO, logger="mmrec.index.library_index"):
            li = LibraryIndex.open(store)
        said = caplog.text
        assert "index: ondisk:IVF256,PQ6 -- vectors + HNSW graph would need" in said
        assert isinstance(li.index, OnDiskIndex) and li.describe()["choice"].startswith("vectors + HNSW")
        _, got = li.search(items[17].fused, 1)  # re-ranked with the stored fused vectors
        assert got[0, 0] == keys[17]
        store.commit_items(make_items(fusion, ["x17"], seed=42), fusion.version)  # x17 changes
        store.delete_items(["x18"])
        reader = LibraryIndex.load(store)
        assert isinstance(reader.index, OnDiskIndex) and len(reader) == 1199
        assert reader.search(items[17].fused, 1)[1][0, 0] != keys[17]
        assert keys[18] not in reader.search(items[18].fused, 20)[1][0]
        li.sync()  # the writer saves the change: a delta and a tombstone next to the linked shard
        assert not [p for p in check_library(tmp_path / "lib").problems if p.part == "index"]
        version = resolve(tmp_path / "lib" / "index")
        assert version is not None
        shard = version / "shard-0000.faiss"
        raw = bytearray(shard.read_bytes())
        raw[-100] ^= 0xFF
        shard.write_bytes(bytes(raw))
        found = [p for p in check_library(tmp_path / "lib").problems if p.part == "index"]
        assert [p.code for p in found] == ["index-unreadable"] and "checksum mismatch" in found[0].message
    finally:
        store.close()


def test_integrity_catches_a_modified_shard(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "index"
    shutil.copytree(built, folder)
    version = resolve(folder)
    assert version is not None
    shard = version / "shard-0001.faiss"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(VectorIndexError, match="shard-0001.faiss: checksum mismatch"):
        load_index(folder)

    # big files: a load checks the first, last and a few random blocks; `mmrec check` checks all
    monkeypatch.setattr(integrity, "FULL_BELOW", 0)
    big = tmp_path / "big.bin"
    big.write_bytes(np.random.default_rng(1).bytes(64 * 4096))
    monkeypatch.setattr(integrity, "BLOCK", 4096)
    record = integrity.file_record(big)
    assert len(record["sha256"]) == 64  # type: ignore[arg-type]
    raw = bytearray(big.read_bytes())
    raw[-1] ^= 1  # the last block: always sampled
    big.write_bytes(bytes(raw))
    with pytest.raises(integrity.IndexIntegrityError, match="big.bin: checksum mismatch"):
        integrity.verify_file(big, record, "sampled")
    raw[-1] ^= 1
    raw[30 * 4096] ^= 1  # a middle block: found for sure by the full check
    big.write_bytes(bytes(raw))
    with pytest.raises(integrity.IndexIntegrityError):
        integrity.verify_file(big, record, "full")
    raw.append(0)
    big.write_bytes(bytes(raw))
    with pytest.raises(integrity.IndexIntegrityError, match="bytes"):
        integrity.verify_file(big, record, "none")
    meta = json.loads((version / "meta.json").read_text())
    assert meta["kind"] == "ondisk" and "shard-0001.faiss" in meta["files"]
