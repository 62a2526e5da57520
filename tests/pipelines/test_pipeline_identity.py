"""Item identity on real files: two folders, aliases, broken links, and an older library's ids.

Issue 9 ("Items silently lost"): before, ids were relative paths, so ``encode A`` then ``encode B``
replaced A's ``photo.png`` with B's; a symlink alias took its target's item; one dangling link
stopped the whole run with a traceback.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from mmrec.store import LibraryStore
from pipelines.discover import discover
from pipelines.encode_job import run_encode

SERIAL = {"workers": 0, "batch_size": 4, "progress": False, "frame_count": 2, "speech": False}


@pytest.fixture(scope="module")
def models():
    import torch

    from encoders.registry import load_models

    torch.set_num_threads(2)
    return load_models("bundled", device="cpu")


def _stamps(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "tuxpaint" / "stamps" / "animals" / "marsupials").glob("*.png"))


def _folder(root: Path, name: str, pictures: list[Path]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i, src in enumerate(pictures):
        shutil.copy(src, folder / ("photo.png" if i == 0 else src.name))
    return folder


def _items(library: Path) -> dict[str, str]:
    with LibraryStore.open(library, create=False) as store:
        return {r.item_id: r.path for r in store.items()}


def _frames(library: Path, item_id: str):
    with LibraryStore.open(library, create=False) as store:
        return store.vectors("frames", [store.get(item_id).key])[0]


def test_two_folders_never_replace_each_other(tmp_path: Path, data_dir: Path, models) -> None:
    koala, kangaroo, wombat = _stamps(data_dir)
    a = _folder(tmp_path / "one", "A", [koala, wombat])  # A/photo.png is a koala
    b = _folder(tmp_path / "two", "B", [kangaroo])  # B/photo.png is a kangaroo
    library = tmp_path / "lib"
    first = run_encode(a, library, models=models, **SERIAL)
    second = run_encode(b, library, models=models, **SERIAL)
    assert (first.encoded, second.encoded, second.deleted) == (2, 1, 0)
    items = _items(library)
    # the first folder keeps plain relative ids; the second gets its label
    assert items == {
        "photo.png": str(a / "photo.png"),
        "wombat.png": str(a / "wombat.png"),
        "B:photo.png": str(b / "photo.png"),
    }
    koala_vec = _frames(library, "photo.png")
    again_a = run_encode(a, library, models=models, **SERIAL)
    again_b = run_encode(b, library, models=models, **SERIAL)
    assert (again_a.encoded, again_a.deleted, again_a.skipped_unchanged) == (0, 0, 2)
    assert (again_b.encoded, again_b.deleted, again_b.skipped_unchanged) == (0, 0, 1)
    assert _items(library) == items  # no flip back and forth
    assert float(_frames(library, "photo.png")[0] @ koala_vec[0]) > 0.9999  # still A's koala
    with LibraryStore.open(library, create=False) as store:
        assert [(s.label, s.prefix) for s in store.sources()] == [("A", ""), ("B", "B:")]

    # A third folder with the same name gets its own label, stable across runs.
    c = _folder(tmp_path / "three", "A", [wombat])
    run_encode(c, library, models=models, **SERIAL)
    assert _items(library)["A-2:photo.png"] == str(c / "photo.png")
    assert len(_items(library)) == 4


def test_a_subfolder_keeps_the_ids_its_parent_gave(tmp_path: Path, data_dir: Path, models) -> None:
    koala, kangaroo, _ = _stamps(data_dir)
    parent = tmp_path / "media"
    (parent / "photos").mkdir(parents=True)
    shutil.copy(koala, parent / "photos" / "koala.png")
    shutil.copy(kangaroo, parent / "kangaroo.png")
    library = tmp_path / "lib"
    assert run_encode(parent, library, models=models, **SERIAL).encoded == 2
    ids = _items(library)
    sub = run_encode(parent / "photos", library, models=models, **SERIAL)
    again = run_encode(parent, library, models=models, **SERIAL)
    assert (sub.encoded, sub.deleted, sub.skipped_unchanged) == (0, 0, 1)
    assert (again.encoded, again.deleted, again.skipped_unchanged) == (0, 0, 2)
    assert (
        _items(library)
        == ids
        == {
            "photos/koala.png": str(parent / "photos" / "koala.png"),
            "kangaroo.png": str(parent / "kangaroo.png"),
        }
    )


def test_an_older_library_keeps_its_ids(tmp_path: Path, data_dir: Path, models) -> None:
    """A library written before sources were recorded: its ids stay valid, collisions are avoided."""
    koala, kangaroo, wombat = _stamps(data_dir)
    a = _folder(tmp_path, "A", [koala, wombat])
    b = _folder(tmp_path, "B", [kangaroo])
    library = tmp_path / "lib"
    run_encode(a, library, models=models, **SERIAL)
    conn = sqlite3.connect(library / "catalog.sqlite")
    conn.execute("DROP TABLE sources")  # exactly what an older mmrec wrote: no sources table
    conn.commit()
    conn.close()
    before = (library / "catalog.sqlite").read_bytes()
    with LibraryStore.open(library, create=False) as store:  # readers never migrate
        assert store.sources() == [] and store.get("photo.png") is not None
    assert (library / "catalog.sqlite").read_bytes() == before

    second = run_encode(b, library, models=models, **SERIAL)  # the writer adds the table
    assert second.encoded == 1
    items = _items(library)
    assert items["photo.png"] == str(a / "photo.png") and items["wombat.png"] == str(a / "wombat.png")
    # B registered first in this library's record, so it has the empty prefix: its photo.png
    # would take A's id, and gets its qualified id instead
    assert items["B:photo.png"] == str(b / "photo.png")
    again = run_encode(a, library, models=models, **SERIAL)
    assert (again.encoded, again.deleted, again.skipped_unchanged) == (0, 0, 2)
    assert _items(library) == items


def test_a_symlink_alias_is_reported_and_its_target_keeps_the_item(
    tmp_path: Path, data_dir: Path, models
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for i, src in enumerate(_stamps(data_dir)):
        shutil.copy(src, media / f"{i:03d}.png")
    (media / "alias.png").symlink_to("001.png")
    os.link(media / "002.png", media / "hard.png")
    library = tmp_path / "lib"
    summary = run_encode(media, library, models=models, **SERIAL)
    assert summary.encoded == 3 and summary.failed == 0
    assert sorted(_items(library)) == ["000.png", "001.png", "002.png"]
    assert sorted(summary.aliases) == [
        (str(media / "alias.png"), "001.png"),
        (str(media / "hard.png"), "002.png"),
    ]
    assert summary.to_dict()["aliases"][0] == {"path": str(media / "alias.png"), "item_id": "001.png"}
    again = run_encode(media, library, models=models, **SERIAL)
    assert (again.encoded, again.skipped_unchanged, len(again.aliases)) == (0, 3, 2)


def test_dangling_links_and_loops_are_failures_not_a_crash(tmp_path: Path, data_dir: Path, models) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(_stamps(data_dir)[0], media / "good.png")
    (media / "dangling.png").symlink_to(media / "nowhere.png")
    (media / "loop.png").symlink_to("loop.png")
    (media / "ping.png").symlink_to("pong.png")
    (media / "pong.png").symlink_to("ping.png")
    (media / "dirloop").symlink_to(media)  # a folder link back up is not followed
    shutil.copy(_stamps(data_dir)[1], media / "sidecar.png")
    (media / "sidecar.png.json").write_text("{not json")
    library = tmp_path / "lib"
    summary = run_encode(media, library, models=models, **SERIAL)
    assert summary.encoded == 1 and summary.failed == 5
    reasons = {Path(p).name: r for p, r in summary.failures}
    sidecar_reason = reasons.pop("sidecar.png")
    assert (
        str(media / "sidecar.png.json") in sidecar_reason and "sidecar is not readable JSON" in sidecar_reason
    )
    assert reasons["dangling.png"] == f"dangling symlink (its target {media / 'nowhere.png'} does not exist)"
    assert reasons["loop.png"] == reasons["ping.png"] == reasons["pong.png"] == "symlink loop"
    assert list(_items(library)) == ["good.png"]
    with LibraryStore.open(library, create=False) as store:
        assert {Path(p).name for p, _, _ in store.failures()} == {*reasons, "sidecar.png"}
    again = run_encode(media, library, models=models, **SERIAL)
    assert (again.encoded, again.failed, again.skipped_failed, again.skipped_unchanged) == (0, 0, 5, 1)
    (media / "nowhere.png").symlink_to("good.png")  # the dangling link now names good.png
    (media / "sidecar.png.json").write_text('{"title": "Kangaroo"}')  # fixed: tried again
    third = run_encode(media, library, models=models, **SERIAL)
    assert third.encoded == 1 and _items(library)["sidecar.png"] == str(media / "sidecar.png")
    assert [Path(p).name for p, _ in third.aliases] == ["dangling.png", "nowhere.png"]
    with LibraryStore.open(library, create=False) as store:  # the link is an alias now, not a failure
        assert {Path(p).name for p, _, _ in store.failures()} == {"loop.png", "ping.png", "pong.png"}


def test_unreadable_entries_are_failures_with_a_reason(data_dir: Path) -> None:
    """Permission denied, seen by an unprivileged user (root reads everything): the child drops to
    ``nobody`` after importing, in a folder under /tmp that ``nobody`` may enter."""
    import json
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    top = Path(tempfile.mkdtemp(prefix="mmrec-perm-"))
    try:
        top.chmod(0o755)
        media = top / "media"
        (media / "locked").mkdir(parents=True)
        media.chmod(0o755)
        shutil.copy(_stamps(data_dir)[0], media / "good.png")
        shutil.copy(_stamps(data_dir)[1], media / "secret.png")
        (media / "good.png").chmod(0o644)
        (media / "secret.png").chmod(0o000)
        (media / "locked").chmod(0o000)
        code = (
            "import json, os, sys; from pipelines.discover import discover; os.setgid(65534); os.setuid(65534); "
            "d = discover(sys.argv[1]); print(json.dumps({f.rel: f.reject_reason for f in d.files}))"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        out = subprocess.run(
            [sys.executable, "-c", code, str(media)], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {
            "good.png": None,
            "secret.png": "cannot read the file (permission denied)",
            "locked": "cannot list this folder (permission denied)",
        }
    finally:
        for p in (top / "media" / "locked", top / "media" / "secret.png"):
            p.chmod(0o700)
        shutil.rmtree(top)


def test_two_files_with_one_sidecar_id_keep_both(tmp_path: Path, data_dir: Path, models) -> None:
    """Two sidecars naming one id: the second file fails with the reason instead of replacing the first."""
    import json

    koala, kangaroo, _ = _stamps(data_dir)
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(koala, media / "a.png")
    shutil.copy(kangaroo, media / "b.png")
    for name in ("a.png", "b.png"):
        (media / f"{name}.json").write_text(json.dumps({"item_id": "animal"}))
    library = tmp_path / "lib"
    summary = run_encode(media, library, models=models, **SERIAL)
    assert summary.encoded == 1 and summary.failed == 1
    assert _items(library) == {"animal": str(media / "a.png")}
    assert summary.failures == [
        (
            str(media / "b.png"),
            f"item id 'animal' is already used by {media / 'a.png'}; give this file an item_id of its "
            "own in a sidecar (<file>.json) or the --metadata manifest",
        )
    ]
    assert len(discover(media).files) == 2


def test_environment_failures_recorded_by_older_versions_are_retried(
    tmp_path: Path, data_dir: Path, models
) -> None:
    """Libraries hit by the "All workers expired" bug: those rows no longer block their files."""
    from pipelines.discover import partial_hash
    from pipelines.plan import item_hash

    media = tmp_path / "media"
    media.mkdir()
    for src in _stamps(data_dir):
        shutil.copy(src, media / src.name)
    library = tmp_path / "lib"
    reasons = ["All workers expired", "took longer than 300 s; the worker was killed", "not a media file"]
    with LibraryStore.open(library) as store:
        for f, reason in zip(discover(media).files, reasons, strict=True):
            store.record_failure(f.path, reason, f.size, f.mtime, item_hash(f, partial_hash(f.path)))
    summary = run_encode(media, library, models=models, **SERIAL)
    assert (summary.encoded, summary.skipped_failed) == (2, 1)  # the file's own failure stays
    assert sorted(_items(library)) == ["kangaroo.png", "koala.png"]
