"""Discovery and planning on a small real folder: kinds, sidecars, manifests, incremental states."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmrec.errors import InvalidInputError
from pipelines.discover import discover, partial_hash, read_manifest, sniff_kind
from pipelines.plan import item_hash, make_plan


def _by_rel(found, root: Path) -> dict:
    return {Path(f.path).relative_to(root).as_posix(): f for f in found.files}


def test_discover_kinds_sidecars_and_rejects(media_folder: Path) -> None:
    found = discover(media_folder)
    files = _by_rel(found, media_folder.resolve())
    assert list(files) == sorted(files)  # deterministic, sorted walk
    assert ".hidden.png" not in files and "images/animals/koala.png.json" not in files
    assert files["images/animals/koala.png"].kind == "image"
    assert files["sounds/koala_call.ogg"].kind == "audio"
    assert files["sounds/hello_en.wav"].kind == "audio"
    assert files["video/bigbuckbunny.mp4"].kind == "video"
    assert files["empty.wav"].reject_reason == "empty file"
    assert files["video/noise.mp4"].reject_reason == "not a media file"
    koala = files["images/animals/koala.png"]
    assert koala.item_id == "koala" and koala.meta.title == "Koala"
    assert koala.meta.tags == ["animal", "marsupial"]
    assert files["images/animals/kangaroo.png"].item_id == "images/animals/kangaroo.png"


def test_sniff_real_lena_formats(lena_dir: Path) -> None:
    kinds = {}
    for name in (
        "lena.wav",
        "lena.mp3",
        "lena.ogg",
        "lena.opus",
        "lena.flac",
        "lena.m4a",
        "lena.aac",
        "lena.aiff",
        "lena.caf",
        "lena.webm",
        "lena.raw",
    ):
        kinds[name] = sniff_kind((lena_dir / name).read_bytes()[:512])
    audio = {
        "lena.wav",
        "lena.mp3",
        "lena.ogg",
        "lena.opus",
        "lena.flac",
        "lena.aac",
        "lena.aiff",
        "lena.caf",
    }
    assert {k for k, v in kinds.items() if v == "audio"} == audio
    # MP4 "isom" and Matroska containers may hold video: the sniff says video, probe decides audio-only
    assert kinds["lena.webm"] == "video" and kinds["lena.m4a"] == "video"
    assert kinds["lena.raw"] is None


def test_manifest_text_rows_and_bad_row(media_folder: Path, tmp_path: Path) -> None:
    good = tmp_path / "items.csv"
    good.write_text(
        "path,item_id,title,description,tags\n"
        "images/animals/kangaroo.png,roo,Kangaroo,Hops around,animal;australia\n"
        ",note-1,A text-only note,No media at all,\n"
    )
    found = discover(media_folder, good)
    assert [t.item_id for t in found.text_items] == ["note-1"]
    assert found.text_items[0].kind == "text" and found.text_items[0].path is None
    roo = _by_rel(found, media_folder.resolve())["images/animals/kangaroo.png"]
    assert roo.item_id == "roo" and roo.meta.tags == ["animal", "australia"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"path": "a.png", "title": "ok"}) + "\n" + json.dumps({"title": "no id"}) + "\n"
    )
    with pytest.raises(InvalidInputError) as err:
        read_manifest(bad)
    assert err.value.field == "item_id" and f"{bad}:2" in str(err.value)

    bad_tags = tmp_path / "tags.jsonl"
    bad_tags.write_text(json.dumps({"path": "a.png", "tags": 5}) + "\n")
    with pytest.raises(InvalidInputError, match="tags"):
        read_manifest(bad_tags)


def test_partial_hash_sees_middle_and_tail_edits(tmp_path: Path, bigbuckbunny: Path) -> None:
    big = tmp_path / "big.bin"
    data = bytearray(bigbuckbunny.read_bytes() * 4)  # > 3 MiB: partial path
    big.write_bytes(data)
    h0 = partial_hash(big)
    data[-10] ^= 0xFF
    big.write_bytes(data)
    h1 = partial_hash(big)
    data[len(data) // 2] ^= 0xFF
    big.write_bytes(data)
    assert len({h0, h1, partial_hash(big)}) == 3


class FakeStore:
    """The three planning reads of LibraryStore, over a dict (the real store is tested end to end)."""

    def __init__(self, states: dict, ids: dict) -> None:
        self.states, self.ids = states, ids

    def file_states(self) -> dict:
        return self.states

    def find_by_path(self, path: str):
        return type("R", (), {"item_id": self.ids[path]}) if path in self.ids else None

    def get(self, item_id: str):
        return None


def test_plan_new_unchanged_touched_changed_deleted_failed(media_folder: Path) -> None:
    found = discover(media_folder)
    files = _by_rel(found, media_folder.resolve())
    states, ids = {}, {}
    for f in files.values():
        status = "failed" if f.reject_reason else "ok"
        states[f.path] = (
            f.size,
            f.mtime,
            item_hash(f, partial_hash(f.path) if not f.reject_reason else None),
            status,
        )
        ids[f.path] = f.item_id
    gone = str(media_folder.resolve() / "gone.wav")
    states[gone], ids[gone] = (1, 1.0, "x:y", "ok"), "gone.wav"
    states["/elsewhere/other.wav"], ids["/elsewhere/other.wav"] = (1, 1.0, "x:y", "ok"), "other"
    plan = make_plan(found, FakeStore(states, ids))
    assert plan.todo == [] and plan.unchanged == 5 and plan.skipped_failed == 2
    assert plan.delete_ids == ["gone.wav"]  # files outside this root are not touched

    lena = media_folder / "sounds" / "koala_call.ogg"
    os.utime(lena, (1_000_000, 1_000_000))  # touched, same bytes: still unchanged
    hello = media_folder / "sounds" / "hello_en.wav"
    with open(hello, "ab") as fh:
        fh.write(b"\0" * 64)
    plan = make_plan(discover(media_folder), FakeStore(states, ids))
    assert [Path(t.path).name for t in plan.todo] == ["hello_en.wav"]
    assert plan.unchanged == 4
    retry = make_plan(discover(media_folder), FakeStore(states, ids), retry_failed=True)
    assert sorted(Path(r.path).name for r in retry.reject) == ["empty.wav", "noise.mp4"]


def test_manifest_inside_the_media_folder_is_not_an_item(media_folder: Path) -> None:
    inside = media_folder / "manifest.jsonl"
    inside.write_text(json.dumps({"item_id": "note-2", "title": "Text only"}) + "\n")
    found = discover(media_folder, inside)
    assert [t.item_id for t in found.text_items] == ["note-2"]
    assert str(inside.resolve()) not in {f.path for f in found.files}
