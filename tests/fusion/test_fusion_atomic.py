"""``train-fusion`` commits all or nothing: a run killed at any step leaves one fusion that every item's
fused vector comes from and that every reader uses; checkpoints nothing uses are cleaned up.

"Killed" is a BaseException raised at a step of the real writer (what a SIGKILL leaves on disk
is the same: nothing after that step runs); ``scripts/kill_trials.py`` does it with real SIGKILLs.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import mmrec.store.library as store_module
from mmrec import Library
from mmrec.check import check_library
from mmrec.fusion import Fusion
from mmrec.fusion.library_training import fuse_keys

_REFUSERS = {"train_fusion", "fuse_keys"}  # who calls Fusion.fuse to re-fuse stored items (old, new)


class Killed(BaseException):
    """Stands for the SIGKILL: nothing after the step runs, no cleanup code catches it."""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, stamps_dir: Path) -> Path:
    media = tmp_path_factory.mktemp("stamps")
    pngs = [p for p in sorted(stamps_dir.rglob("*.png")) if p.with_suffix(".txt").is_file()][:6]
    for png in pngs:
        dest = media / f"{png.parent.name}-{png.name}"
        shutil.copyfile(png, dest)
        caption = png.with_suffix(".txt").read_text(encoding="utf-8").splitlines()[0].strip()
        (media / f"{dest.name}.json").write_text(json.dumps({"title": caption}), encoding="utf-8")
    path = tmp_path_factory.mktemp("lib") / "library"
    with Library(path, models="bundled", device="cpu") as lib:
        assert lib.encode(media, workers=0, progress=False).encoded == len(pngs)
    return path


@pytest.fixture
def library(pristine: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "library"
    shutil.copytree(pristine, copy)
    yield copy


def _consistent(path: Path) -> str:
    """A fresh reader's fusion is the one every item was fused with; returns its version."""
    with Library(path, create=False, device="cpu") as lib:
        fusion: Fusion = lib.fusion
        keys = [int(r.key) for r in lib.store.items() if r.key is not None]
        want, _ = fuse_keys(lib.store, fusion, keys)
        np.testing.assert_allclose(lib.store.fused(keys), want, atol=1e-4)
        versions = {r.fusion_version for r in _fusion_columns(path)}
        assert versions == {fusion.version}, (versions, fusion.version)
        assert lib.info().fusion_version == fusion.version
        return fusion.version


class _Row:
    def __init__(self, version: str) -> None:
        self.fusion_version = version


def _fusion_columns(path: Path) -> list[_Row]:
    import sqlite3

    with sqlite3.connect(path / "catalog.sqlite") as conn:
        return [_Row(r[0]) for r in conn.execute("SELECT fusion_version FROM items WHERE status='ok'")]


def _kill_at_manifest_write(monkeypatch: pytest.MonkeyPatch) -> None:
    real = store_module.write_json_atomic

    def write(path: Path, data: dict) -> None:
        if path.name == "manifest.json" and data.get("fusion_version"):
            raise Killed
        real(path, data)

    monkeypatch.setattr(store_module, "write_json_atomic", write)


def test_killed_before_the_manifest_switch_leaves_one_fusion(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _consistent(library)
    _kill_at_manifest_write(monkeypatch)
    with Library(library, create=False, device="cpu") as lib, pytest.raises(Killed):
        lib.train_fusion(epochs=2, holdout_fraction=0.25, seed=0)
    monkeypatch.undo()
    after = _consistent(library)  # whichever fusion won, items, readers and info agree on it
    assert after != before
    report = check_library(library, repair=True)
    assert report.codes() <= {"manifest-fusion-mismatch"} and report.ok, report.to_dict()
    assert json.loads((library / "manifest.json").read_text())["fusion_version"] == after


def test_killed_while_refusing_changes_nothing_and_the_orphan_is_cleaned(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _consistent(library)
    fused_before = (library / "vectors" / "fused.f32").read_bytes()
    real = Fusion.fuse

    def fuse(self: Fusion, items: list) -> tuple:
        if sys._getframe(1).f_code.co_name in _REFUSERS:  # re-fusing the library, not training's scoring
            raise Killed
        return real(self, items)

    monkeypatch.setattr(Fusion, "fuse", fuse)
    with Library(library, create=False, device="cpu") as lib, pytest.raises(Killed):
        lib.train_fusion(epochs=2, holdout_fraction=0.25, seed=0)
    monkeypatch.undo()
    assert _consistent(library) == before
    assert (library / "vectors" / "fused.f32").read_bytes() == fused_before
    orphans = list((library / "fusion").glob("*.pt"))
    assert len(orphans) == 1  # the killed run's checkpoint: unused
    assert "fusion-orphans" in check_library(library).codes()
    with Library(library, create=False, device="cpu") as lib:  # the next run cleans it up
        version = lib.train_fusion(epochs=2, holdout_fraction=0.25, seed=1)["version"]
    assert [p.name for p in (library / "fusion").glob("*.pt")] == [f"{version}.pt"]
    assert _consistent(library) == version
    assert check_library(library).ok
