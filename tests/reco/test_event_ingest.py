"""Reading and ingesting event/comment files: row validation with line numbers, idempotent re-ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmrec.errors import MmrecError
from mmrec.events import EventStore, RowError, ingest, parse_rows, parse_timestamp, read_events

CSV = """user_id,item_id,event,value,timestamp
u1,animals/mammals/dogs/dog,like,,1700000000
u1,vehicles/cycle/bicycle,view,0.5,2024-01-02T03:04:05Z
u2,food/fruit/apple,jump,,1700000100
u2,,like,,1700000200
u3,food/fruit/apple,view,1.7,1700000300
u3,food/fruit/apple,rating,,1700000400
u3,food/fruit/apple,rating,4,yesterday
u4,plants/flowers/rose,dislike,,1700000500
"""


def test_csv_rows_validated_with_line_numbers(tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    f.write_text(CSV)
    res = read_events(f)
    assert res.kind == "events"
    assert [(e.user_id, e.event) for e in res.events] == [("u1", "like"), ("u1", "view"), ("u4", "dislike")]
    assert res.events[1].timestamp == parse_timestamp("2024-01-02T03:04:05+00:00")
    assert res.events[1].value == 0.5
    by_line = {(e.line, e.field) for e in res.errors}
    assert by_line == {(4, "event"), (5, "item_id"), (6, "value"), (7, "value"), (8, "timestamp")}
    msg = {e.line: str(e) for e in res.errors}
    assert "jump" in msg[4] and "outside 0..1" in msg[6] and "needs a value" in msg[7]


def test_in_memory_rows_share_the_file_validation(tmp_path: Path) -> None:
    """The rows a server receives are checked like the same rows read from a file, line = row index."""
    f = tmp_path / "events.csv"
    f.write_text(CSV)
    from_file = read_events(f)
    header, *lines = CSV.strip().splitlines()
    rows = [dict(zip(header.split(","), line.split(","), strict=True)) for line in lines]
    from_rows = parse_rows(rows, "events")
    assert from_rows.events == from_file.events
    assert [(e.line + 1, e.field, e.reason) for e in from_rows.errors] == [
        (e.line, e.field, e.reason) for e in from_file.errors
    ]  # the file counts its header as line 1
    live = parse_rows([{"user": "a", "item": "x", "event": "like"}, 7, {"user_id": "b"}], "events", 99.0)
    assert [(e.user_id, e.timestamp) for e in live.events] == [("a", 99.0)]
    assert [(e.line, e.field) for e in live.errors] == [(2, "row"), (3, "item_id"), (3, "event")]
    comments = parse_rows([{"user_id": "a", "item_id": "x", "text": "好看"}], "comments", 5.0)
    assert comments.kind == "comments" and comments.comments[0].text == "好看"


def test_jsonl_and_parquet(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text(
        json.dumps({"user_id": "a", "item_id": "x", "event": "share", "timestamp": 5}) + "\n"
        "{not json\n"
        "\n"
        + json.dumps(["a", "list"])
        + "\n"
        + json.dumps({"user": "b", "item": "y", "event": "SKIP", "ts": 6})
        + "\n"
    )
    res = read_events(f)
    assert [(e.user_id, e.event) for e in res.events] == [("a", "share"), ("b", "skip")]
    assert [(e.line, e.field) for e in res.errors] == [(2, "row"), (4, "row")]
    p = tmp_path / "c.parquet"
    pq.write_table(
        pa.table(
            {"user_id": ["a", "b"], "item_id": ["x", None], "text": ["nice", "bad"], "timestamp": [1.0, 2.0]}
        ),
        p,
    )
    res = read_events(p)
    assert res.kind == "comments" and [c.text for c in res.comments] == ["nice"]
    assert res.errors == [RowError(2, "item_id", "missing")]


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(MmrecError, match="file not found"):
        read_events(tmp_path / "nope.csv")
    (tmp_path / "e.xlsx").write_text("x")
    with pytest.raises(MmrecError, match="unsupported format"):
        read_events(tmp_path / "e.xlsx")


def test_ingest_is_idempotent(tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    f.write_text(CSV)
    lib = tmp_path / "lib"
    first = ingest(lib, f)
    assert (first.added, first.duplicates, len(first.errors)) == (3, 0, 5)
    assert first.users == {"u1", "u4"}
    again = ingest(lib, f)
    assert (again.added, again.duplicates) == (0, 3)
    with EventStore.open(lib) as store:
        assert store.counts()["events"] == 3
        assert [e.item_id for e in store.events("u1")] == [
            "animals/mammals/dogs/dog",
            "vehicles/cycle/bicycle",
        ]
    assert (lib / "events.sqlite").exists()


def test_comments_are_analysed_once(tmp_path: Path, analyzer) -> None:  # noqa: ANN001
    f = tmp_path / "comments.csv"
    f.write_text(
        "user_id,item_id,text,timestamp\n"
        'u1,animals/mammals/dogs/dog,"What a lovely, cute dog!",1700000000\n'
        "u1,vehicles/cycle/bicycle,这辆自行车太难看了,1700000100\n"
        "u2,x,,1700000200\n"
    )
    lib = tmp_path / "lib"
    rep = ingest(lib, f, analyzer)
    assert (rep.kind, rep.added, rep.duplicates) == ("comments", 2, 0)
    assert [(e.line, e.field) for e in rep.errors] == [(4, "text")]
    with EventStore.open(lib) as store:
        en, zh = store.comments("u1")
    assert en.language == "en" and en.sentiment > 0 and any("dog" in k for k, _ in en.keywords)
    assert zh.language == "zh" and zh.sentiment < 0 and "自行车" in dict(zh.keywords)

    class Exploding:
        name = "must-not-run"

        def analyze(self, texts):  # noqa: ANN001, ANN202
            raise AssertionError("re-ingest analysed stored comments again")

    again = ingest(lib, f, Exploding())
    assert (again.added, again.duplicates) == (0, 2)


def test_comments_without_analyzer_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"user_id": "a", "item_id": "x", "text": "hi", "timestamp": 1}) + "\n")
    with pytest.raises(MmrecError, match="analyzer"):
        ingest(tmp_path / "lib", f)
