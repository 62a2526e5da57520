"""Input bounds (mmrec.limits) and event value ranges, through the reader, the Library and the CLI.

Each case is one the hardening issue reproduced: latin-1/UTF-16 events files, CSV fields over
csv's 128 KB default, a 1 MB comment, a 50 KB query, ratings of -5 or 1e308, timestamps of 1e300
or year 9999, and oversized item metadata.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmrec import Library
from mmrec.cli.main import cli
from mmrec.errors import InvalidInputError
from mmrec.events import EventFileError, RowError, parse_rows, parse_timestamp, read_events
from mmrec.limits import (
    MAX_COMMENT_CHARS,
    MAX_FIELD_CHARS,
    MAX_FUTURE_S,
    MAX_ID_CHARS,
    MAX_QUERY_CHARS,
    MAX_TITLE_CHARS,
)
from pipelines.discover import read_manifest, read_sidecar

EVENTS = (
    "user_id,item_id,event,timestamp,value\nren\xe9,caf\xe9,like,1700000000,\nzo\xeb,a2,view,1700000001,0.5\n"
)


# ----------------------------------------------------------------------------- encodings


def test_latin1_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(EVENTS.encode("latin-1"))
    with pytest.raises(EventFileError) as err:
        read_events(path)
    assert str(path) in str(err.value) and "line 2" in str(err.value) and "0xe9" in str(err.value)
    assert "--encoding" in str(err.value)


def test_latin1_with_encoding_decodes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(EVENTS.encode("latin-1"))
    res = read_events(path, encoding="latin-1")
    assert [(e.user_id, e.item_id) for e in res.events] == [("ren\xe9", "caf\xe9"), ("zo\xeb", "a2")]
    assert res.errors == []


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32"])
def test_unicode_encodings_detected(codec: str, tmp_path: Path) -> None:
    """UTF-16/32 by BOM, UTF-16 without a BOM by its NUL bytes, the UTF-8 BOM: all decode as written."""
    csv_path = tmp_path / "events.csv"
    csv_path.write_bytes(EVENTS.encode(codec))
    jsonl_path = tmp_path / "events.jsonl"
    row = {"user_id": "ren\xe9", "item_id": "a1", "event": "like", "timestamp": 1700000000}
    jsonl_path.write_bytes((json.dumps(row, ensure_ascii=False) + "\n").encode(codec))
    assert [e.user_id for e in read_events(csv_path).events] == ["ren\xe9", "zo\xeb"]
    assert [e.user_id for e in read_events(jsonl_path).events] == ["ren\xe9"]


def test_bad_bytes_late_in_a_file_name_the_line(tmp_path: Path) -> None:
    """Past the detection sample, an undecodable byte still becomes one error, not a crash."""
    good = "".join(f"u{i},a1,like,{1700000000 + i}\n" for i in range(10_000))
    path = tmp_path / "late.csv"
    path.write_bytes(("user_id,item_id,event,timestamp\n" + good).encode() + b"u\xff,a1,like,1700000000\n")
    with pytest.raises(EventFileError, match="not valid utf-8 after line"):
        read_events(path)


# ----------------------------------------------------------------------------- sizes


def test_csv_fields_over_128kb(tmp_path: Path) -> None:
    """A 200 KB comment (over csv's default limit) is read and truncated; one over the bound is one row error."""
    path = tmp_path / "comments.csv"
    rows = [
        "user_id,item_id,text,timestamp",
        f'u1,a1,"{"x" * 200_000}",1700000000',
        f'u2,a1,"{"y" * (MAX_FIELD_CHARS + 10)}",1700000001',
        "u3,a2,short and fine,1700000002",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    res = read_events(path)
    assert [c.user_id for c in res.comments] == ["u1", "u3"]
    assert len(res.comments[0].text) == MAX_COMMENT_CHARS
    assert [(e.line, e.field) for e in res.errors] == [(3, "row")]
    assert str(MAX_FIELD_CHARS) in res.errors[0].reason
    assert [(w.line, w.field) for w in res.warnings] == [(2, "text")]


def test_oversized_field_in_jsonl_and_long_ids(tmp_path: Path) -> None:
    rows = [
        {"user_id": "u" * (MAX_ID_CHARS + 1), "item_id": "a1", "event": "like", "timestamp": 1700000000},
        {"user_id": "u1", "item_id": "a" * (MAX_ID_CHARS + 1), "event": "like", "timestamp": 1700000000},
        {
            "user_id": "u1",
            "item_id": "a1",
            "event": "like",
            "timestamp": 1700000000,
            "x": "z" * (MAX_FIELD_CHARS + 1),
        },
        {"user_id": "u1", "item_id": "a1", "event": "like", "timestamp": 1700000000},
    ]
    res = parse_rows(rows, "events")
    assert [(e.line, e.field) for e in res.errors] == [(1, "user_id"), (2, "item_id"), (3, "x")]
    assert len(res.events) == 1


def test_one_megabyte_comment_is_truncated_with_a_warning(
    files: dict[str, Path], library: Path, tmp_path: Path
) -> None:
    """Analysis reads every character (about 2.4 KB/s): a 1 MB comment is cut to the bound, reported."""
    lib_copy = shutil.copytree(library, tmp_path / "lib")
    path = tmp_path / "comments.jsonl"
    text = "I loved this dog video so much. " * (1_000_000 // 32)
    path.write_text(
        json.dumps({"user_id": "u9", "item_id": "a1", "text": text, "timestamp": 1700000000}) + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["ingest", str(path), "--library", str(lib_copy), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 1 and report["errors"] == []
    assert report["warnings"] == [
        {
            "line": 1,
            "field": "text",
            "reason": f"{len(text.strip())} characters; the limit is {MAX_COMMENT_CHARS}: "
            f"truncated to the first {MAX_COMMENT_CHARS}",
        }
    ]


def test_long_query_is_refused(library: Path) -> None:
    with Library(library, create=False, device="cpu") as lib:
        with pytest.raises(InvalidInputError) as err:
            lib.search("dog " * 12_500)  # 50 KB
        assert err.value.field == "q" and str(MAX_QUERY_CHARS) in str(err.value)
        with pytest.raises(InvalidInputError) as err:
            lib.describe_user("u1", "x" * 5000)
        assert err.value.field == "text"
        assert lib.search("dog " * (MAX_QUERY_CHARS // 4)).results  # at the bound: answered
    result = CliRunner().invoke(cli, ["search", "dog " * 12_500, "--library", str(library)])
    assert result.exit_code == 2 and result.output.startswith(
        "error: search: field 'q': the query is 49999 characters"
    )


def test_item_metadata_bounds(tmp_path: Path) -> None:
    sidecar = tmp_path / "a.png.json"
    sidecar.write_text(json.dumps({"title": "t" * (MAX_TITLE_CHARS + 1)}), encoding="utf-8")
    with pytest.raises(InvalidInputError) as err:
        read_sidecar(sidecar)
    assert err.value.field == "title" and err.value.source == str(sidecar)
    sidecar.write_text(json.dumps({"tags": [f"t{i}" for i in range(500)]}), encoding="utf-8")
    with pytest.raises(InvalidInputError, match="500 tags"):
        read_sidecar(sidecar)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'item_id,title,description\nb1,ok,"{"d" * 200_000}"\n', encoding="utf-8")
    with pytest.raises(InvalidInputError) as err:
        read_manifest(manifest)
    assert err.value.source.startswith(str(manifest))


# ----------------------------------------------------------------------------- value ranges


@pytest.mark.parametrize(
    ("event", "value", "accepted"),
    [
        ("rating", "-5", False),
        ("rating", "1e308", False),
        ("rating", "5.5", False),
        ("rating", "0", True),
        ("rating", "4.5", True),
        ("view", "1.5", False),
        ("view", "-0.1", False),
        ("view", "1", True),
    ],
)
def test_value_ranges(event: str, value: str, accepted: bool) -> None:
    rows = [{"user_id": "u1", "item_id": "a1", "event": event, "value": value, "timestamp": 1700000000}]
    res = parse_rows(rows, "events")
    assert len(res.events) == int(accepted)
    if not accepted:
        assert [(e.line, e.field) for e in res.errors] == [(1, "value")]


@pytest.mark.parametrize(
    ("ts", "accepted"),
    [
        ("1e300", False),
        ("9999-12-31T00:00:00", False),
        ("-1", False),
        ("1969-12-31T23:59:59Z", False),
        (str(time.time() + 2 * MAX_FUTURE_S), False),
        ("0", True),
        ("1970-01-01T00:00:00Z", True),
        (str(time.time() + MAX_FUTURE_S / 2), True),
        ("2024-05-01T12:00:00+02:00", True),
    ],
)
def test_timestamp_range(ts: str, accepted: bool) -> None:
    res = parse_rows([{"user_id": "u1", "item_id": "a1", "event": "like", "timestamp": ts}], "events")
    assert len(res.events) == int(accepted), res.errors
    if not accepted:
        assert [(e.line, e.field) for e in res.errors] == [(1, "timestamp")]
        with pytest.raises(ValueError):
            parse_timestamp(ts)


def test_far_future_row_cannot_zero_other_interests(library: Path, tmp_path: Path) -> None:
    """One row at ts=1e300 used to take interest weight 1.0 and decay every other interest to 0."""
    lib_copy = shutil.copytree(library, tmp_path / "lib")
    with Library(lib_copy, create=False, device="cpu") as lib:
        result = lib.add_events(
            [
                {"user_id": "u7", "item_id": "a1", "event": "like", "timestamp": 1.7e9},
                {"user_id": "u7", "item_id": "a2", "event": "like", "timestamp": 1.7e9 + 60},
                {"user_id": "u7", "item_id": "a3", "event": "like", "timestamp": 1e300},
            ]
        )
        assert result.added == 2
        assert [(e.line, e.field) for e in result.errors] == [(3, "timestamp")]
        assert isinstance(result.errors[0], RowError)
        weights = [i.weight for i in lib.profile("u7").interests]
        assert weights and all(w > 0.1 for w in weights), weights
