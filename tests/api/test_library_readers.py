"""Readers that keep up with a writer: a long-lived Library sees other processes' commits without
saving anything, reading writes nothing, and index saves and loads in several processes never clash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmrec import Library

ROOT = Path(__file__).resolve().parents[2]
EXTRA = {"guitar_classical": "hobbies", "carrot": "food"}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file with its size and mtime (SQLite's -wal/-shm exist only while a connection is open)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture()
def copy(library: Library, tmp_path: Path) -> Path:
    """A private copy of the shared library, settled (its WAL checkpointed by a first open/close)."""
    dst = tmp_path / "lib"
    shutil.copytree(library.path, dst, ignore=shutil.ignore_patterns("events.sqlite*"))
    Library(dst, create=False).close()
    return dst


def test_reading_writes_nothing(copy: Path) -> None:
    before = _snapshot(copy)
    lib = Library(copy, create=False)
    try:
        assert lib.search("a fire truck", k=1).results[0].item_id == "images/firetruck.png"
        assert lib.similar("images/dog.png", k=1).results
        assert lib.info().index is not None and lib.items().total == 9 and lib.item("bikes.mp4")
        assert lib.refresh() is False  # nothing moved
    finally:
        lib.close()
    assert _snapshot(copy) == before
    assert not (copy / "events.sqlite").exists()


def test_a_long_lived_library_sees_another_process_encode(
    copy: Path, stamps_dir: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    for name, category in EXTRA.items():
        png = next((stamps_dir / category).rglob(f"{name}.png"))
        title = png.with_suffix(".txt").read_text(encoding="utf-8").splitlines()[0].strip()
        shutil.copy(png, extra / png.name)
        (extra / f"{png.name}.json").write_text(json.dumps({"title": title, "tags": [category]}))
    reader = Library(copy, create=False, device="cpu")
    try:
        assert reader.search("a guitar", k=1).results[0].item_id != "guitar_classical.png"
        seq_before = reader.index.seq
        cmd = [sys.executable, "-m", "mmrec.cli.main", "encode", str(extra), "--library", str(copy)]
        cmd += ["--workers", "1", "--device", "cpu"]
        done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        written = _snapshot(copy / "index")  # the writer saved its index; the reader must not
        hits = reader.search("a guitar", k=1).results  # no restart, no reopen
        # a second folder's items carry its label (issue 9: folders never share ids)
        assert hits[0].item_id == "extra:guitar_classical.png"
        assert reader.index.seq > seq_before and reader.items().total == 11
        assert reader.similar("extra:carrot.png", k=1).results
        assert _snapshot(copy / "index") == written
    finally:
        reader.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from mmrec.index.library_index import LibraryIndex
    from mmrec.store import LibraryStore
    store = LibraryStore.open(sys.argv[1], create=False)
    saves = errors = 0
    end = time.time() + float(sys.argv[2])
    while time.time() < end:
        try:
            index = LibraryIndex.open(store)
            index.rebuild()
            saves += 1
        except Exception as exc:
            errors += 1
            print(repr(exc), file=sys.stderr)
    print(saves, errors)
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from mmrec.index.library_index import LibraryIndex
    from mmrec.store import LibraryStore
    store = LibraryStore.open(sys.argv[1], create=False)
    loads = errors = 0
    end = time.time() + float(sys.argv[2])
    query = store.fused([next(store.items()).key])
    while time.time() < end:
        try:
            index = LibraryIndex.load(store)
            scores, keys = index.search(query, 3)
            assert len(index) == 9 and keys[0, 0] >= 0, (len(index), keys)
            loads += 1
        except Exception as exc:
            errors += 1
            print(repr(exc), file=sys.stderr)
    print(loads, errors)
    """
)


def test_index_saves_and_loads_in_several_processes_never_clash(copy: Path, tmp_path: Path) -> None:
    """Two writers save the index over and over while two readers load it: zero errors anywhere
    (a reader that deleted a live writer's temp folder, or saw no index mid-swap, would count one)."""
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "reader.py").write_text(READER)
    seconds = "6"
    procs = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / f"{role}.py"), str(copy), seconds],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("writer", "writer", "reader", "reader")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        done, errors = (int(x) for x in out.split())
        results.append((done, errors, err.strip()[-500:]))
    assert all(errors == 0 for _, errors, _ in results), results
    saves, loads = sum(r[0] for r in results[:2]), sum(r[0] for r in results[2:])
    assert saves >= 10 and loads >= 10, results
    index_dir = copy / "index"
    assert len(list(index_dir.glob("v-*"))) <= 2 and not list(index_dir.glob(".tmp-*"))


def test_a_reader_never_rebuilds_a_missing_index(copy: Path) -> None:
    from mmrec.errors import IndexUnavailableError

    shutil.rmtree(copy / "index")
    (copy / "index").mkdir()
    lib = Library(copy, create=False)
    try:
        with pytest.raises(IndexUnavailableError, match="mmrec reindex"):
            lib.similar("images/dog.png", k=1)
        info = lib.info()
        assert info.index is None and "mmrec reindex" in (info.index_error or "")
        assert not list((copy / "index").iterdir())  # nothing rebuilt or saved by the reader
        assert lib.reindex().ntotal == 9  # the writer's command does it
        assert lib.similar("images/dog.png", k=1).results[0].item_id == "images/elephant.png"
    finally:
        lib.close()


def test_a_reader_follows_a_new_fusion_and_new_events(copy: Path) -> None:
    """Another writer trains the fusion (re-fusing every item) and adds events: the reader's next
    calls use the new checkpoint, the re-fused index and the new profile."""
    reader = Library(copy, create=False, device="cpu")
    writer = Library(copy, create=False, device="cpu")
    try:
        assert reader.search("a fire truck", k=1).results[0].item_id == "images/firetruck.png"
        old_version = reader.fusion.version
        report = writer.train_fusion(epochs=2, holdout_fraction=0.25, seed=0)
        writer.add_events([{"user_id": "eve", "item_id": "images/dog.png", "event": "like"}])
        hits = reader.search("a fire truck", k=3).results
        assert reader.fusion.version == report["version"] != old_version
        assert reader.index.seq == writer.store.seq()
        for hit in hits:  # contributions are exact parts of the score only if both sides were re-fused alike
            assert hit.matched is not None and hit.matched.dense_score is not None
            assert sum(hit.contributions.values()) == pytest.approx(hit.matched.dense_score, abs=1e-4)
        assert reader.profile("eve").n_events == 1
    finally:
        writer.close()
        reader.close()
