"""compact() drops garbage rows (replaced, deleted, uncommitted) and keeps every live vector."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np

from mmrec import modalities
from mmrec.store import LibraryStore


def _snapshot(store: LibraryStore) -> dict[str, tuple[list, np.ndarray]]:
    out = {}
    for rec in store.items():
        vecs = [store.vectors(m, [rec.key])[0] for m in modalities.names()]
        out[rec.item_id] = (vecs, store.fused([rec.key])[0])
    return out


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for item_id, (vecs, fused) in a.items():
        np.testing.assert_array_equal(fused, b[item_id][1])
        for x, y in zip(vecs, b[item_id][0], strict=True):
            np.testing.assert_array_equal(x, y)


def test_compact_keeps_live_rows_and_shrinks_files(tmp_path: Path, make_items) -> None:
    lib = tmp_path / "lib"
    with LibraryStore.open(lib) as store:
        store.commit_items(make_items(0), "v0")
        store.commit_items(make_items(1), "v0")  # every item replaced: first rows are garbage
        gone = make_items(2)[:3]
        store.delete_items([it.record.item_id for it in gone])
        # a crash between append and commit leaves unreferenced rows (and maybe a torn row) at the end
        with open(lib / "vectors" / "frames.f32", "ab") as fh:
            fh.write(np.ones((5, 32), np.float32).tobytes() + b"\x01\x02")
        before = _snapshot(store)
        sizes = {m: (lib / "vectors" / f"{m}.f32").stat().st_size for m in ("frames", "fused")}
        result = store.compact()
        after = _snapshot(store)
        st = store.stats()
    _same(before, after)
    n_live = len(before)
    frames_live = sum(v[0].shape[0] for v, _ in before.values())
    assert result["frames"] == (sizes["frames"], frames_live * 32 * 4)
    assert result["fused"] == (sizes["fused"], n_live * 48 * 4)
    assert result["fused"][1] < result["fused"][0] / 2
    for m, info in st["modalities"].items():
        assert info["file_rows"] == info["live_rows"], m
    with LibraryStore.open(lib) as store:  # reopen: the remapped slots are durable
        _same(before, _snapshot(store))
        store.commit_items(make_items(3)[:2], "v0")  # two of the deleted ids come back: appends still work
        assert store.compact()["fused"][1] == (n_live + 2) * 48 * 4


def test_an_interrupted_compaction_is_finished_on_open(tmp_path: Path, make_items) -> None:
    lib = tmp_path / "lib"
    with LibraryStore.open(lib) as store:
        store.commit_items(make_items(4), "v0")
        store.commit_items(make_items(5), "v0")
        before = _snapshot(store)
        store.compact()
    # replay the state a kill leaves between the catalog commit and the file rename:
    # slots already point at the compacted layout, the new file still sits under its temp name
    vec = lib / "vectors"
    os.replace(vec / "audio.f32", vec / "audio.f32.compact")
    with open(vec / "audio.f32", "wb") as fh:
        fh.write(np.zeros((100, 24), np.float32).tobytes())
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        conn.execute("INSERT INTO meta(name, value) VALUES ('compact_pending:audio', '1')")
    (vec / "fused.f32.compact").write_bytes(b"\0" * 64)  # a temp file from a compaction that never committed
    with LibraryStore.open(lib) as store:
        _same(before, _snapshot(store))
        assert not list(vec.glob("*.compact"))
        with sqlite3.connect(lib / "catalog.sqlite") as conn:
            assert (
                conn.execute("SELECT COUNT(*) FROM meta WHERE name LIKE 'compact_pending:%'").fetchone()[0]
                == 0
            )
