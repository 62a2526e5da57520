"""``Library.train_fusion`` on a tiny real library of captioned tuxpaint stamps."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mmrec import Library
from mmrec.errors import MmrecError
from mmrec.fusion import DEFAULT_VERSION

STAMPS = [
    "animals/marsupials/kangaroo",
    "animals/marsupials/wombat",
    "food/fruit/apple",
    "food/fruit/banana",
    "vehicles/emergency/ambulance",
    "vehicles/construction/dumper",
    "plants/flowers/rose",
    "household/tools/hammer",
    "sports/balls/football",
    "town/buildings/castle",
    "seasonal/hanukkah/menorah",
    "clothes/hats/cowboy_hat",
]


def _pick(stamps_dir: Path) -> list[Path]:
    """The listed stamps when present, topped up with other captioned stamps to 12."""
    found = [stamps_dir / f"{s}.png" for s in STAMPS if (stamps_dir / f"{s}.png").is_file()]
    others = (p for p in sorted(stamps_dir.rglob("*.png")) if p.with_suffix(".txt").is_file())
    for p in others:
        if len(found) >= 12:
            break
        if p not in found:
            found.append(p)
    return found


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, stamps_dir: Path) -> Library:
    media = tmp_path_factory.mktemp("stamps")
    for png in _pick(stamps_dir):
        dest = media / f"{png.parent.name}-{png.name}"
        shutil.copyfile(png, dest)
        caption = png.with_suffix(".txt").read_text(encoding="utf-8").splitlines()[0].strip()
        (media / f"{dest.name}.json").write_text(json.dumps({"title": caption}), encoding="utf-8")
    lib = Library(tmp_path_factory.mktemp("lib") / "library", models="bundled", device="cpu")
    # refresh_fusion=False: training starts here from the plain default (centring is tests/fusion/test_default_centring.py)
    summary = lib.encode(media, workers=0, progress=False, refresh_fusion=False)
    assert summary.encoded == 12, summary.to_dict()
    return lib


def test_train_fusion_refuses_without_encoders(
    library: Library, monkeypatch: pytest.MonkeyPatch, stamps_dir: Path
) -> None:
    keys = [int(r.key) for r in library.store.items()]
    before = library.store.fused(keys).copy()
    assert library.fusion.version == DEFAULT_VERSION

    def boom(role: str) -> None:
        raise AssertionError(f"re-fusing must not use an encoder (role {role!r} was asked for)")

    # Every encoder is reached through ModelSet._get (frames, audio, speech, text and the text towers),
    # whatever method the pipeline calls on it (encode_and_tag, encode_text, transcribe...).
    models = library.models
    monkeypatch.setattr(models, "_get", boom)
    with pytest.raises(AssertionError, match="must not use an encoder"):
        library.similar(_pick(stamps_dir)[0])  # a file outside the library is encoded: the guard is live
    report = library.train_fusion(epochs=5, holdout_fraction=0.25, seed=0)
    monkeypatch.undo()

    version = report["version"]
    assert library.store.manifest()["fusion_version"] == version
    assert (library.path / "fusion" / f"{version}.pt").is_file()
    assert report["refused_items"] == 12 and report["holdout_items"] == 3
    assert "frames" in report["bridges"]
    after = library.store.fused(keys)
    assert after.shape == before.shape
    assert not np.allclose(after, before)  # centring changed every item's vector
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    with sqlite3.connect(library.path / "catalog.sqlite") as conn:
        versions = {row[0] for row in conn.execute("SELECT fusion_version FROM items")}
    assert versions == {version}
    assert library.fusion.version == version and library.fusion.bridges is not None


def test_search_after_training_uses_the_bridge(library: Library) -> None:
    if library.fusion.version == DEFAULT_VERSION:
        library.train_fusion(epochs=5, holdout_fraction=0.25, seed=0)
    response = library.search("a red kangaroo", k=5)
    assert len(response.results) == 5
    assert any("frames" in hit.contributions for hit in response.results)
    titles = [hit.title.lower() for hit in response.results]
    assert any("kangaroo" in t for t in titles[:3]), titles


def test_cli_train_fusion_prints_json_report(library: Library) -> None:
    from click.testing import CliRunner

    from mmrec.cli.cmd_fusion import train_fusion_cmd

    previous = (
        library.store.manifest()["fusion_version"] if library.store.manifest().get("fusion_version") else None
    )
    result = CliRunner().invoke(
        train_fusion_cmd,
        ["--library", str(library.path), "--epochs", "3", "--holdout", "0.25", "--seed", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["refused_items"] == 12 and report["epochs"] == 3
    reopened = Library(library.path, create=False)
    try:
        assert reopened.store.manifest()["fusion_version"] == report["version"] != previous
        assert len(reopened.search("a banana", k=3).results) == 3
    finally:
        reopened.close()


def test_empty_library_is_a_clear_error(tmp_path: Path) -> None:
    with (
        Library(tmp_path / "empty", models="bundled", device="cpu") as lib,
        pytest.raises(MmrecError, match="no encoded item"),
    ):
        lib.train_fusion(epochs=1)
