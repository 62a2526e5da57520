"""Deletions, the change log an index catches up from, and failure bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrec.errors import ItemNotFoundError
from mmrec.store import ItemRecord, LibraryStore


def test_delete_and_changes_since(tmp_path: Path, make_items) -> None:
    items = make_items(10)
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(items, "v0")
        up, gone, seq0 = store.changes_since(0)
        assert up.tolist() == sorted(keys) and gone.size == 0 and seq0 == len(items)
        assert up.dtype == np.int64 and gone.dtype == np.int64

        victims = [items[0].record.item_id, items[3].record.item_id, "never-existed"]
        deleted = store.delete_items(victims)
        assert sorted(deleted) == sorted([keys[0], keys[3]])
        assert store.get(items[0].record.item_id) is None
        assert store.vectors("frames", [keys[0]]) == [None]
        up, gone, seq1 = store.changes_since(seq0)
        assert up.size == 0 and sorted(gone.tolist()) == sorted([keys[0], keys[3]]) and seq1 == seq0 + 2

        # a re-commit of a deleted id gets a fresh key: keys are never reused
        again = store.commit_items([make_items(11)[0]], "v0")
        assert again[0] not in keys
        up, gone, seq2 = store.changes_since(seq1)
        assert up.tolist() == again and gone.size == 0 and seq2 == seq1 + 1
        # replaying from the start gives the state an index must end in
        up, gone, _ = store.changes_since(0)
        assert set(up.tolist()) == {k for k in keys if k not in (keys[0], keys[3])} | set(again)
        assert set(gone.tolist()) == {keys[0], keys[3]}
        live = np.concatenate([k for k, _ in store.iter_fused(batch_size=3)])
        assert sorted(live.tolist()) == sorted(up.tolist())


def test_an_item_that_turned_failed_leaves_the_index(tmp_path: Path, make_items) -> None:
    items = make_items(12)
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(items, "v0")
        _, _, seq = store.changes_since(0)
        failed = make_items(12)[1]
        failed.record.status, failed.record.error = "failed", "decoder crashed"
        failed.vectors, failed.weights = {}, {}  # it still carries a fused vector: the store must drop it
        assert store.commit_items([failed], "v0") == [keys[1]]
        up, gone, _ = store.changes_since(seq)
        assert up.size == 0 and gone.tolist() == [keys[1]]
        assert keys[1] not in np.concatenate([k for k, _ in store.iter_fused()]).tolist()
        assert [r.item_id for r in store.items(status="failed")] == [failed.record.item_id]
        assert store.get(failed.record.item_id).error == "decoder crashed"
        with pytest.raises(ItemNotFoundError):
            store.fused([keys[1]])
        no_fused = make_items(12)[2]
        no_fused.record.status, no_fused.fused = "failed", np.zeros(0, np.float32)
        store.commit_items([no_fused], "v0")
        assert store.get(no_fused.record.item_id).status == "failed"


def test_failures_are_upserted_and_cleared(tmp_path: Path, make_items, lena_dir: Path) -> None:
    broken = lena_dir / "lena-24-dwvw.aiff"  # the one file of the set that does not decode
    st = broken.stat()
    items = make_items(13)
    video = items[0].record
    with LibraryStore.open(tmp_path / "lib") as store:
        store.record_failure(str(broken), "unsupported codec DWVW", st.st_size, st.st_mtime, None)
        store.record_failure(str(broken), "unsupported codec DWVW (retried)", st.st_size, st.st_mtime, "abc")
        fails = store.failures()
        assert [(p, r) for p, r, _ in fails] == [(str(broken), "unsupported codec DWVW (retried)")]
        assert store.file_states()[str(broken)] == (st.st_size, st.st_mtime, "abc", "failed")

        # a failure on a path whose ok item exists keeps the item
        store.commit_items(items, "v0")
        store.record_failure(video.path, "timeout after 60 s", 1, 2.0, None)
        assert store.get(video.item_id).status == "ok"
        assert store.file_states()[video.path] == (1, 2.0, None, "failed")
        assert len(store.failures()) == 2

        # re-committing the path clears its failure; deleting clears it too
        store.commit_items([make_items(14)[0]], "v0")
        assert [p for p, _, _ in store.failures()] == [str(broken)]
        assert store.file_states()[video.path][3] == "ok"
        store.record_failure(video.path, "again", None, None, None)
        store.delete_items([video.item_id])
        assert [p for p, _, _ in store.failures()] == [str(broken)]
        assert store.forget_failures([str(broken)]) == 1 and store.failures() == []
    with LibraryStore.open(tmp_path / "lib") as store:
        assert store.stats()["failures"] == 0


def test_stats_reports_counts_and_sizes(tmp_path: Path, make_items) -> None:
    items = make_items(15)
    with LibraryStore.open(tmp_path / "lib") as store:
        store.commit_items(items, "v0")
        store.record_failure("/media/x.mp4", "empty file", 0, 1.0, None)
        st = store.stats()
    by_kind: dict[str, int] = {}
    for it in items:
        by_kind[it.record.kind] = by_kind.get(it.record.kind, 0) + 1
    assert st["items"] == len(items) and st["by_kind"] == by_kind and st["by_status"] == {"ok": len(items)}
    assert st["failures"] == 1
    frames_rows = sum(it.vectors["frames"].shape[0] for it in items)
    assert st["modalities"]["frames"] == {
        "dim": 32,
        "items": len(items),
        "live_rows": frames_rows,
        "file_rows": frames_rows,
    }
    assert st["modalities"]["fused"]["dim"] == 48
    assert st["files"]["vectors/frames.f32"] == frames_rows * 32 * 4
    assert st["files"]["catalog.sqlite"] > 0 and "manifest.json" in st["files"]
    assert st["manifest"]["models"] == {}


def test_text_only_items_have_no_path(tmp_path: Path, make_items) -> None:
    note = [it for it in make_items(16) if it.record.kind == "text"][0]
    with LibraryStore.open(tmp_path / "lib") as store:
        store.commit_items([note], "v0")
        assert store.get(note.record.item_id).path is None
        assert store.file_states() == {}
        assert store.find_by_path("None") is None
        assert isinstance(store.get(note.record.item_id), ItemRecord)
