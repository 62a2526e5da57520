"""The full-text (FTS5) table in the catalog: words found per field, Chinese, and kept in step with
the items by the same transactions (replace, delete, a rolled-back commit, kill -9, old libraries)."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmrec.store import EncodedItem, ItemRecord, LibraryStore
from mmrec.store.lexical import query_terms, segment
from mmrec.store.library import LexicalIndexMissingError

ROOT = Path(__file__).resolve().parents[2]


def _item(item_id: str, title: str = "", seed: int = 0, status: str = "ok", **fields: object) -> EncodedItem:
    rng = np.random.default_rng(seed)
    vec = rng.standard_normal((1, 8)).astype(np.float32)
    vec /= np.linalg.norm(vec)
    rec = ItemRecord(item_id, None, "text", title=title, status=status, **fields)  # type: ignore[arg-type]
    return EncodedItem(rec, {"text": vec}, vec[0], {"text": 1.0})


def _items() -> list[EncodedItem]:
    """Texts as a real library holds them: sidecar titles/tags, a transcript, visual tags, Chinese."""
    return [
        _item("runner", "Marathon runners crossing the bridge", 1, tags=["sport"]),
        _item("cats", "如何照顾小猫", 2, description="养猫指南", tags=["猫"]),
        _item(
            "talk",
            "clip 7",
            3,
            metadata={
                "transcript": "The quick brown fox jumps over the lazy dog.",
                "visual_tags": [["fire engine", 0.41], ["ambulance", 0.12]],
            },
        ),
        _item("bus", "A double decker bus", 4, description="双层公共汽车", tags=["vehicles"]),
    ]


def _ids(store: LibraryStore, text: str) -> list[str]:
    keys = [m.key for m in store.lexical_search(text, 10)]
    return [r.item_id for r in store.get_by_keys(keys) if r is not None]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def store(tmp_path: Path) -> LibraryStore:
    s = LibraryStore.open(tmp_path / "lib")
    s.commit_items(_items(), "v0")
    yield s
    s.close()


def test_tokenising_cuts_chinese_and_keeps_words() -> None:
    assert query_terms("Running, DOGS!") == ["running", "dogs"]
    assert query_terms("如何照顾小猫") == ["如何", "照顾", "小猫"]
    # stored text also carries each Chinese word's characters, so "猫" finds "小猫"
    assert set(segment("小猫", stored=True).split()) == {"小猫", "小", "猫"}
    assert query_terms("!!! ...") == []
    # a numeral or demonstrative with a measure word is Chinese's "a"/"the": "一只狗" must not match
    # "一只红苹果" by its "一只" (left in when nothing else is there)
    assert query_terms("一只狗") == ["狗"] and query_terms("这个苹果") == ["苹果"]
    assert query_terms("一只") == ["一只"]


def test_exact_words_find_their_item_with_the_field_that_matched(store: LibraryStore) -> None:
    assert _ids(store, "marathon") == ["runner"]
    assert _ids(store, "crosses") == ["runner"]  # Porter stemming: crosses / crossing
    assert _ids(store, "lazy fox")[0] == "talk"
    assert _ids(store, "ambulance") == ["talk"]
    assert _ids(store, "小猫") == ["cats"]
    assert _ids(store, "猫") == ["cats"]
    assert _ids(store, "公共汽车")[0] == "bus"
    assert _ids(store, "zebra") == []
    keys = {r.item_id: r.key for r in store.items()}
    words = store.lexical_words("lazy fox engine", [keys["talk"], keys["runner"]])
    assert words == {keys["talk"]: {"transcript": ["fox", "lazy"], "vtags": ["engine"]}}
    assert store.lexical_words("照顾 猫", [keys["cats"]])[keys["cats"]] == {
        "title": ["照顾", "猫"],
        "description": ["猫"],  # 养猫
        "tags": ["猫"],
    }
    ranked = store.lexical_search("double decker bus bridge", 10)
    assert [m.rank for m in ranked] == [1, 2] and ranked[0].score > ranked[1].score > 0


def test_replace_and_delete_keep_the_rows_in_step(store: LibraryStore) -> None:
    store.commit_items([_item("runner", "Swimmers in a lake", 5)], "v0")
    assert _ids(store, "marathon") == [] and _ids(store, "swimmers") == ["runner"]
    store.commit_items(
        [_item("bus", "A double decker bus", 6, status="failed", error="decoder crashed")], "v0"
    )
    assert _ids(store, "decker") == []  # a failed item is never a search result
    store.delete_items(["cats"])
    assert _ids(store, "小猫") == []
    diff = store.lexical_diff()
    assert diff.ok, diff
    n = store._db.execute("SELECT COUNT(*) FROM items_fts").fetchone()[0]
    assert n == store.count_items() == 2


def test_a_rolled_back_commit_leaves_catalog_and_words_as_they_were(store: LibraryStore) -> None:
    before_items = [(r.item_id, r.title) for r in store.items()]
    # A real abort late in the commit's transaction, after the words were written.
    store._db.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON meta WHEN NEW.name = 'seq' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="refused by the test"):
        store.commit_items([_item("runner", "Swimmers in a lake", 7), _item("new", "Penguins", 8)], "v0")
    store._db.execute("DROP TRIGGER refuse")
    assert [(r.item_id, r.title) for r in store.items()] == before_items
    assert _ids(store, "swimmers") == [] and _ids(store, "penguins") == []
    assert _ids(store, "marathon") == ["runner"]
    assert store.lexical_diff().ok


CHILD = """
import sys
import numpy as np
from mmrec.store import EncodedItem, ItemRecord, LibraryStore

store = LibraryStore.open(sys.argv[1])
step = 0
while True:
    batch = []
    for b in range(6):
        j = (step * 6 + b) % 30
        rec = ItemRecord(f"item-{j}", None, "text", title=f"version{step} title{j}", tags=[f"t{step % 7}"])
        vec = np.random.default_rng(step * 10 + b).standard_normal((1, 8)).astype(np.float32)
        batch.append(EncodedItem(rec, {"text": vec / np.linalg.norm(vec)}, vec[0] / np.linalg.norm(vec), {"text": 1.0}))
    store.commit_items(batch, "v0")
    if step % 5 == 4:
        store.delete_items([f"item-{(step * 3) % 30}"])
    step += 1
    print(step, flush=True)
"""


def test_kill_9_during_commits_leaves_catalog_and_words_consistent(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    LibraryStore.open(lib).close()
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(lib)],
            stdout=subprocess.PIPE,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        assert proc.stdout is not None
        for _ in range(3 + round_ * 4):  # let it commit a few batches, then kill it mid-stream
            assert proc.stdout.readline(), "the writer died by itself"
        time.sleep(0.01 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with LibraryStore.open(lib) as store:
            diff = store.lexical_diff()
            assert diff.ok, diff
            assert store.count_items() > 0


def test_an_old_library_is_read_without_a_write_and_filled_by_a_writer(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    with LibraryStore.open(lib) as store:
        store.commit_items(_items(), "v0")
    db = lib / "catalog.sqlite"
    with sqlite3.connect(db) as conn:  # what an mmrec before full-text search wrote
        conn.execute("DROP TABLE items_fts")
    before = _digest(db)
    with LibraryStore.open(lib, create=False) as reader:
        assert not reader.has_lexical()
        with pytest.raises(LexicalIndexMissingError, match="mmrec check --library .* --repair"):
            reader.lexical_search("marathon", 5)
        assert reader.lexical_words("marathon", [1]) == {}
        assert not reader.lexical_diff().table_present
    assert _digest(db) == before
    with LibraryStore.open(lib) as writer:  # the first writer creates and fills it in its commit
        writer.commit_items([_item("new", "Penguins on ice", 9)], "v0")
        assert writer.has_lexical() and writer.lexical_diff().ok
        assert _ids(writer, "marathon") == ["runner"] and _ids(writer, "penguins") == ["new"]


def test_rebuild_repairs_rows_that_disagree(store: LibraryStore) -> None:
    conn = store._db
    keys = {r.item_id: r.key for r in store.items()}
    conn.execute("UPDATE items_fts SET title = 'zebra' WHERE rowid = ?", (keys["runner"],))
    conn.execute("DELETE FROM items_fts WHERE rowid = ?", (keys["cats"],))
    conn.execute("INSERT INTO items_fts(rowid, title) VALUES (999, 'ghost')")
    diff = store.lexical_diff()
    assert (diff.stale, diff.missing, diff.extra) == ([keys["runner"]], [keys["cats"]], [999])
    assert store.rebuild_lexical() == 4
    assert store.lexical_diff().ok and _ids(store, "zebra") == [] and _ids(store, "小猫") == ["cats"]
    conn.execute("DELETE FROM items_fts_data WHERE id > 10")  # the FTS index itself damaged
    assert store.lexical_diff().damaged
    store.rebuild_lexical()
    assert store.lexical_diff().ok and _ids(store, "marathon") == ["runner"]
