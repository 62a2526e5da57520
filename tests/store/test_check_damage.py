"""Damage each file of a real small library in turn: readers refuse instead of answering wrongly,
``mmrec check`` names the problem and its fix, and ``--repair`` rebuilds what is derived.

One library (captioned tuxpaint stamps, bundled models, a trained fusion, a few events) is built
once; every test damages its own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmrec import Library
from mmrec.check import check_library
from mmrec.cli.main import cli
from mmrec.errors import LibraryError
from mmrec.fusion import DEFAULT_VERSION
from mmrec.index.atomic import resolve
from mmrec.store import LibraryStore

N_ITEMS = 8
QUERY = "a red apple"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, stamps_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("stamps")
    pngs = [p for p in sorted(stamps_dir.rglob("*.png")) if p.with_suffix(".txt").is_file()]
    for png in pngs[: N_ITEMS + 1]:
        dest = folder / f"{png.parent.name}-{png.name}"
        shutil.copyfile(png, dest)
        caption = png.with_suffix(".txt").read_text(encoding="utf-8").splitlines()[0].strip()
        (dest.parent / f"{dest.name}.json").write_text(json.dumps({"title": caption}), encoding="utf-8")
    extra = sorted(folder.glob("*.png"))[-1]  # kept out of the library: the "next encode" in tests
    spare = tmp_path_factory.mktemp("spare")
    shutil.move(extra, spare / extra.name)
    shutil.move(folder / f"{extra.name}.json", spare / f"{extra.name}.json")
    return folder


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    path = tmp_path_factory.mktemp("lib") / "library"
    lib = Library(path, models="bundled", device="cpu")
    try:
        assert lib.encode(media, workers=0, progress=False).encoded == N_ITEMS
        lib.train_fusion(epochs=2, holdout_fraction=0.25, seed=0)
        ids = [r.item_id for r in lib.store.items()]
        lib.add_events(
            [{"user_id": u, "item_id": i, "event": "like"} for u in ("ann", "bob") for i in ids[:3]]
        )
        # a comment counts in ann's profile (4 rows folded) as it does in the check: no false alarm
        lib.add_comments([{"user_id": "ann", "item_id": ids[0], "text": "I love this red apple"}])
    finally:
        lib.close()
    report = check_library(path)
    assert report.ok, report.to_dict()
    return path


@pytest.fixture
def library(pristine: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "library"
    shutil.copytree(pristine, copy)
    yield copy


def _version(path: Path) -> str:
    store = LibraryStore.open(path, create=False)
    try:
        version = store.fusion_version()
        assert version is not None
        return version
    finally:
        store.close()


def _top(path: Path, k: int = 3) -> list[str]:
    lib = Library(path, create=False, device="cpu")
    try:
        return [h.item_id for h in lib.similar(next(iter(lib.store.items())).item_id, k=k).results]
    finally:
        lib.close()


def _repaired(path: Path, *codes: str) -> None:
    report = check_library(path, repair=True)
    assert set(codes) <= report.codes(), report.to_dict()
    assert report.ok, report.to_dict()
    assert check_library(path).ok


# ---------------------------------------------------------------------------- manifest
def test_deleted_manifest_is_refused_not_recreated_and_restored_by_repair(library: Path) -> None:
    before = json.loads((library / "manifest.json").read_text())
    (library / "manifest.json").unlink()
    with pytest.raises(LibraryError, match="mmrec check"):
        Library(library, create=False)
    with pytest.raises(LibraryError, match="mmrec check"):
        Library(library)  # the default create=True must not recreate it either
    assert not (library / "manifest.json").exists()  # a reader wrote nothing
    report = check_library(library)
    assert "manifest-missing" in report.codes() and not report.ok
    _repaired(library, "manifest-missing")
    after = json.loads((library / "manifest.json").read_text())
    assert after["models"] == before["models"] and after["fusion_version"] == before["fusion_version"]


# ---------------------------------------------------------------------------- fusion checkpoint
def test_deleted_checkpoint_is_refused_and_repair_refuses_with_default(library: Path) -> None:
    version = _version(library)
    assert version != DEFAULT_VERSION
    (library / "fusion" / f"{version}.pt").unlink()
    lib = Library(library, create=False, device="cpu")
    try:
        with pytest.raises(LibraryError, match="mmrec check"):
            lib.search(QUERY, k=3)  # never silently the default fusion
    finally:
        lib.close()
    assert "fusion-missing" in check_library(library).codes()
    _repaired(library, "fusion-missing")
    assert _version(library) == DEFAULT_VERSION
    lib = Library(library, create=False, device="cpu")
    try:
        assert lib.fusion.version == DEFAULT_VERSION and len(lib.search(QUERY, k=3).results) == 3
    finally:
        lib.close()


def test_corrupt_checkpoint_is_refused(library: Path) -> None:
    path = library / "fusion" / f"{_version(library)}.pt"
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    lib = Library(library, create=False, device="cpu")
    try:
        with pytest.raises(LibraryError, match="mmrec check"):
            _ = lib.fusion
    finally:
        lib.close()
    assert "fusion-corrupt" in check_library(library).codes()
    _repaired(library, "fusion-corrupt")


# ---------------------------------------------------------------------------- index
def test_index_overwritten_mid_file_is_detected_and_rebuilt(library: Path) -> None:
    expected = _top(library)
    target = resolve(library / "index")
    assert target is not None
    faiss_file = target / "index.faiss"
    size = faiss_file.stat().st_size
    with open(faiss_file, "r+b") as fh:  # same size, different bytes: only a checksum can tell
        fh.seek(size // 2)
        fh.write(np.random.default_rng(0).standard_normal(64).astype(np.float32).tobytes())
    assert faiss_file.stat().st_size == size
    lib = Library(library, create=False, device="cpu")
    try:
        with pytest.raises(LibraryError, match="checksum"):
            lib.similar(next(iter(lib.store.items())).item_id, k=3)
    finally:
        lib.close()
    assert "index-unreadable" in check_library(library).codes()
    _repaired(library, "index-unreadable")
    assert _top(library) == expected


def test_deleted_index_is_named_and_rebuilt(library: Path) -> None:
    shutil.rmtree(library / "index")
    report = check_library(library)
    assert "index-unreadable" in report.codes()
    assert any("mmrec reindex" in p.fix for p in report.problems)
    _repaired(library, "index-unreadable")


# ---------------------------------------------------------------------------- vector files
def _fused_rows(path: Path) -> list[int]:
    with sqlite3.connect(path / "catalog.sqlite") as conn:
        return [int(r[0]) for r in conn.execute("SELECT row_start FROM slots WHERE modality='fused'")]


def test_truncated_fused_file_refuses_the_next_encode_and_is_refused_by_repair(
    library: Path, media: Path, tmp_path: Path
) -> None:
    fused = library / "vectors" / "fused.f32"
    row_bytes = fused.stat().st_size // len(_fused_rows(library))
    with open(fused, "r+b") as fh:
        fh.truncate(fused.stat().st_size - 3 * row_bytes)
    more = tmp_path / "more"
    shutil.copytree(media, more)
    spare = next(media.parent.glob("spare*/*.png"))
    shutil.copy(spare, more / spare.name)
    lib = Library(library, create=False, device="cpu")
    try:
        with pytest.raises(LibraryError, match="mmrec check"):
            lib.encode(more, workers=0, progress=False)
    finally:
        lib.close()
    rows = _fused_rows(library)
    assert len(rows) == len(set(rows)) == N_ITEMS  # no two items share a fused row
    report = check_library(library)
    assert "vectors-truncated" in report.codes()
    _repaired(library, "vectors-truncated")
    lib = Library(library, create=False, device="cpu")
    try:
        assert lib.encode(more, workers=0, progress=False).failed == 0
    finally:
        lib.close()
    rows = _fused_rows(library)
    # "more" is a second source folder: its files get ids of their own (docs/architecture.md, item identity)
    assert len(rows) == len(set(rows)) == 2 * N_ITEMS + 1
    assert check_library(library).ok


def test_random_bytes_in_fused_file_are_found_and_refused(library: Path) -> None:
    fused = library / "vectors" / "fused.f32"
    fused.write_bytes(os.urandom(fused.stat().st_size))
    report = check_library(library)
    assert "vectors-damaged" in report.codes()
    _repaired(library, "vectors-damaged")


def test_deleted_modality_file_is_named_never_deleted_and_marked_for_encode(library: Path) -> None:
    (library / "vectors" / "text.f32").unlink()
    report = check_library(library, repair=True)
    problem = next(p for p in report.problems if p.code == "vectors-missing")
    assert "mmrec encode" in problem.fix and not report.ok  # encoder output: not derivable here
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == N_ITEMS  # nothing deleted
        marked = conn.execute("SELECT COUNT(*) FROM items WHERE mtime IS NULL").fetchone()[0]
    assert marked == N_ITEMS  # every item had a text row: the next encode re-encodes them


# ---------------------------------------------------------------------------- catalog
def test_garbage_in_the_catalog_is_named(library: Path) -> None:
    db = library / "catalog.sqlite"
    with open(db, "r+b") as fh:
        fh.seek(4096)
        fh.write(os.urandom(4096))
    report = check_library(library, repair=True)
    assert report.codes() & {"catalog-corrupt", "catalog-unusable"}
    assert not report.ok and all("backup" in p.fix for p in report.problems)


# ---------------------------------------------------------------------------- profiles, thumbnails, CLI
def test_damaged_profiles_and_missing_thumbnails_repaired_through_the_cli(library: Path) -> None:
    with sqlite3.connect(library / "events.sqlite") as conn:
        conn.execute("UPDATE profiles SET data=? WHERE user_id='ann'", (os.urandom(512),))
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM thumbnails")
    runner = CliRunner()
    res = runner.invoke(cli, ["check", "--library", str(library), "--json"])
    assert res.exit_code == 1, res.output
    codes = {p["code"] for p in json.loads(res.stdout)["problems"]}
    assert {"profiles-damaged", "thumbnails-missing"} <= codes
    res = runner.invoke(cli, ["check", "--library", str(library), "--repair", "--json"])
    assert res.exit_code == 0, res.output
    assert all(p["repaired"] for p in json.loads(res.stdout)["problems"])
    lib = Library(library, create=False, device="cpu")
    try:
        assert lib.profile("ann").n_events == 4
    finally:
        lib.close()


def test_a_profile_folded_from_rows_that_are_gone_is_named(library: Path) -> None:
    with sqlite3.connect(library / "events.sqlite") as conn:
        conn.execute("DELETE FROM comments WHERE user_id='ann'")
    report = check_library(library)
    problem = next(p for p in report.problems if p.code == "profiles-ahead")
    assert "'ann'" in problem.message and "1 users'" in problem.message and "--repair" in problem.fix
