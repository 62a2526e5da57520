"""Thumbnails in the store: written with their item, gone with it, and old libraries read without a write."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from encoders.media import decode_media
from encoders.media.thumbnail import make_thumbnail
from mmrec.errors import InvalidInputError
from mmrec.store import EncodedItem, LibraryStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pictures(stamps_dir: Path) -> list[tuple[bytes, str]]:
    """Real JPEG thumbnails of a few tuxpaint stamps."""
    out = []
    for p in sorted(stamps_dir.glob("animals/**/*.png"))[:3]:
        thumb = make_thumbnail(decode_media(p), max_side=96)
        assert thumb is not None
        out.append((thumb.data, thumb.mime))
    return out


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_thumbnails_commit_with_their_items_and_go_with_them(
    tmp_path: Path, make_items: Callable[[int], list[EncodedItem]], pictures: list[tuple[bytes, str]]
) -> None:
    items = make_items(0)
    for i, it in enumerate(items[:3]):
        it.thumbnail = pictures[i]
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(items, "v0")
        assert store.thumbnail(keys[0]) == pictures[0]
        assert store.thumbnail(keys[3]) is None
        assert store.thumbnail_keys() == set(keys[:3])
        assert (
            store.thumbnail_keys([keys[1], keys[4]]) == {keys[1]} == store.has_thumbnails([keys[1], keys[4]])
        )
        assert store.stats()["thumbnails"] == 3
        # committed in the same transaction as the item: the same clock reading
        with sqlite3.connect(tmp_path / "lib" / "catalog.sqlite") as conn:
            t_item = conn.execute("SELECT updated FROM items WHERE key=?", (keys[0],)).fetchone()[0]
            t_thumb = conn.execute("SELECT created FROM thumbnails WHERE key=?", (keys[0],)).fetchone()[0]
        assert t_item == t_thumb

        # re-encoding an item without a picture drops its old one (it showed the previous content)
        again = make_items(1)[:2]
        again[0].thumbnail = pictures[2]
        assert store.commit_items(again, "v0") == keys[:2]
        assert store.thumbnail(keys[0]) == pictures[2]
        assert store.thumbnail(keys[1]) is None

        store.delete_items([items[0].record.item_id])
        assert store.thumbnail(keys[0]) is None
        assert keys[0] not in store.thumbnail_keys()


def test_bad_thumbnails_are_refused_with_the_item_and_field(
    tmp_path: Path, make_items: Callable[[int], list[EncodedItem]], pictures: list[tuple[bytes, str]]
) -> None:
    items = make_items(0)[:1]
    with LibraryStore.open(tmp_path / "lib") as store:
        for bad in ((b"", "image/jpeg"), (pictures[0][0], "text/html"), (b"x" * (3 << 20), "image/png"), "x"):
            items[0].thumbnail = bad  # type: ignore[assignment]
            with pytest.raises(InvalidInputError) as err:
                store.commit_items(items, "v0")
            assert err.value.field == "thumbnail" and err.value.source == items[0].record.item_id
        assert next(iter(store.items()), None) is None  # nothing half-written
        with pytest.raises(InvalidInputError):
            store.put_thumbnails([(1, b"", "image/png")])


def test_put_thumbnails_skips_gone_items_and_can_keep_existing_ones(
    tmp_path: Path, make_items: Callable[[int], list[EncodedItem]], pictures: list[tuple[bytes, str]]
) -> None:
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(make_items(0), "v0")
        (a, am), (b, bm) = pictures[0], pictures[1]
        assert store.put_thumbnails([(keys[0], a, am), (keys[1], a, am), (10_000, a, am)]) == 2
        assert store.thumbnail_keys() == {keys[0], keys[1]}
        assert store.put_thumbnails([(keys[0], b, bm), (keys[2], b, bm)], replace=False) == 1
        assert store.thumbnail(keys[0]) == (a, am)  # kept
        assert store.put_thumbnails([(keys[0], b, bm)]) == 1
        assert store.thumbnail(keys[0]) == (b, bm)  # replaced


def test_an_old_library_is_read_without_a_write_and_migrated_by_a_writer(
    tmp_path: Path, make_items: Callable[[int], list[EncodedItem]], pictures: list[tuple[bytes, str]]
) -> None:
    lib = tmp_path / "lib"
    with LibraryStore.open(lib) as store:
        keys = store.commit_items(make_items(0), "v0")
    db = lib / "catalog.sqlite"
    with sqlite3.connect(db) as conn:  # a library made before thumbnails existed
        conn.execute("DROP TABLE thumbnails")
    assert "thumbnails" not in _tables(db)
    before = _digest(db)

    with LibraryStore.open(lib, create=False) as reader:
        assert reader.thumbnail(keys[0]) is None
        assert reader.thumbnail_keys() == set()
        assert reader.stats()["thumbnails"] == 0
        assert reader.get(make_items(0)[0].record.item_id) is not None
    assert _digest(db) == before
    assert "thumbnails" not in _tables(db)

    with LibraryStore.open(lib) as writer:
        assert writer.put_thumbnails([(keys[0], *pictures[0])]) == 1
        assert writer.thumbnail(keys[0]) == pictures[0]
    assert "thumbnails" in _tables(db)


CHILD = """
import sys
from mmrec.store import EncodedItem, ItemRecord, LibraryStore
import numpy as np

store = LibraryStore.open(sys.argv[1])
step = 0
while True:
    batch = []
    for b in range(8):
        j = (step * 8 + b) % 40
        rng = np.random.default_rng(step * 100 + b)
        rec = ItemRecord(f"item-{j}", f"/media/{j}.mp4", "video", metadata={"version": step})
        picture = (f"item-{j} version {step} ".encode() * 200, "image/jpeg")
        vecs = {"frames": rng.standard_normal((4, 16)).astype(np.float32)}
        batch.append(EncodedItem(rec, vecs, rng.standard_normal(16).astype(np.float32), {"frames": 1.0}, picture))
    store.commit_items(batch, "v0")
    print(step, flush=True)
    step += 1
"""


def test_sigkill_leaves_every_item_with_its_own_thumbnail(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    rng = random.Random(8)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(lib)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        want, seen, deadline = rng.randint(2, 12), 0, time.monotonic() + 60
        while seen < want and time.monotonic() < deadline and proc.stdout.readline():
            seen += 1
        time.sleep(rng.uniform(0, 0.02))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert seen >= 1
        with LibraryStore.open(lib, create=False) as store:
            records = list(store.items())
            assert records
            assert store.thumbnail_keys() == {r.key for r in records}
            for rec in records:
                found = store.thumbnail(rec.key)
                assert found is not None
                assert found[0].startswith(f"{rec.item_id} version {rec.metadata['version']} ".encode())
