"""Reading event and comment files (CSV, JSONL, Parquet): validate every row, keep the good ones.

A file is a comments file when it has a ``text`` column, an events file otherwise. Bad rows never stop
the read: each becomes a :class:`RowError` with its line number, and the rest are returned.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmrec.events.records import EVENT_KINDS, CommentRecord, EventFileError, EventRecord, RowError

EVENT_COLUMNS = ("user_id", "item_id", "event", "timestamp")
COMMENT_COLUMNS = ("user_id", "item_id", "text", "timestamp")
_ALIASES = {"user": "user_id", "item": "item_id", "ts": "timestamp", "time": "timestamp", "comment": "text"}


@dataclass
class ReadResult:
    """What one file held: ``kind`` is "events" or "comments"."""

    kind: str
    events: list[EventRecord] = field(default_factory=list)
    comments: list[CommentRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def read_events(path: str | Path) -> ReadResult:
    """Read an events or comments file; the format comes from the suffix (.csv, .jsonl/.ndjson, .parquet)."""
    p = Path(path)
    if not p.is_file():
        raise EventFileError(str(p), "file not found")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = _csv_rows(p, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(p)
    elif suffix == ".parquet":
        rows = _parquet_rows(p)
    else:
        raise EventFileError(str(p), f"unsupported format {suffix!r}: use .csv, .jsonl or .parquet")
    return _parse(rows)


def parse_rows(rows: Sequence[object], kind: str, default_timestamp: float | None = None) -> ReadResult:
    """Validate in-memory rows (e.g. a JSON list posted to the server) exactly as a file's rows.

    ``kind`` is "events" or "comments"; a row error's ``line`` is the 1-based index of the row in
    ``rows``. Rows that are not mappings are refused one by one, never the whole list. A live
    event usually happens now: ``default_timestamp`` fills a missing (absent or null) timestamp.
    """
    if kind not in ("events", "comments"):
        raise ValueError(f"kind must be 'events' or 'comments', got {kind!r}")
    numbered: list[tuple[int, dict[str, Any] | RowError]] = []
    for n, row in enumerate(rows, start=1):
        if isinstance(row, Mapping):
            numbered.append((n, {str(k): v for k, v in row.items()}))
        else:
            numbered.append((n, RowError(n, "row", f"expected an object, got {type(row).__name__}")))
    return _parse(numbered, kind, default_timestamp)


def _parse(
    rows: Iterable[tuple[int, dict[str, Any] | RowError]],
    kind: str | None = None,
    default_timestamp: float | None = None,
) -> ReadResult:
    """Validate numbered rows; without ``kind`` the first good row decides (a ``text`` column: comments)."""
    result: ReadResult | None = None if kind is None else ReadResult(kind=kind)
    for line, row in rows:
        if isinstance(row, RowError):
            if result is None:
                result = ReadResult(kind="events")
            result.errors.append(row)
            continue
        row = {_ALIASES.get(k.strip().lower(), k.strip().lower()): v for k, v in row.items()}
        if default_timestamp is not None and row.get("timestamp") is None:
            row["timestamp"] = default_timestamp
        if kind is None and (result is None or (not result.events and not result.comments and "text" in row)):
            found = "comments" if "text" in row else "events"
            errors = result.errors if result else []
            result = ReadResult(kind=found, errors=errors)
        assert result is not None
        if result.kind == "comments":
            rec = _comment(line, row, result.errors)
            if rec:
                result.comments.append(rec)
        else:
            ev = _event(line, row, result.errors)
            if ev:
                result.events.append(ev)
    return result or ReadResult(kind="events")


def _csv_rows(p: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            raise EventFileError(str(p), "empty file: no header row")
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                yield (
                    start,
                    RowError(
                        start,
                        "row",
                        f"{len(row[None]) + len(reader.fieldnames)} fields, header has {len(reader.fieldnames)}",
                    ),
                )
            else:
                yield start, row
            start = reader.line_num + 1


def _jsonl_rows(p: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    with p.open(encoding="utf-8") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield n, RowError(n, "row", f"invalid JSON ({exc.msg})")
                continue
            yield n, obj if isinstance(obj, dict) else RowError(n, "row", "not a JSON object")


def _parquet_rows(p: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise EventFileError(str(p), f"unreadable parquet ({exc})") from exc
    yield from enumerate(table.to_pylist(), start=1)


def _require(row: dict[str, Any], name: str, line: int, errors: list[RowError]) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        errors.append(RowError(line, name, "missing"))
        return None
    return str(value).strip()


def parse_timestamp(value: Any) -> float:
    """Unix seconds (int/float/numeric string) or ISO 8601 (naive means UTC) -> float unix seconds."""
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        try:
            ts = float(text)
        except ValueError:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            if not math.isfinite(ts) or ts < 0:
                raise ValueError("must be a finite non-negative unix time")
            return ts
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _timestamp(row: dict[str, Any], line: int, errors: list[RowError]) -> float | None:
    raw = _require(row, "timestamp", line, errors)
    if raw is None:
        return None
    try:
        return parse_timestamp(row["timestamp"])
    except ValueError as exc:
        errors.append(RowError(line, "timestamp", f"{raw!r} is not a unix time or ISO 8601 date ({exc})"))
        return None


def _event(line: int, row: dict[str, Any], errors: list[RowError]) -> EventRecord | None:
    n_before = len(errors)
    user = _require(row, "user_id", line, errors)
    item = _require(row, "item_id", line, errors)
    kind = _require(row, "event", line, errors)
    if kind is not None and kind.lower() not in EVENT_KINDS:
        errors.append(RowError(line, "event", f"{kind!r} is not one of {', '.join(EVENT_KINDS)}"))
    ts = _timestamp(row, line, errors)
    value = _value(row.get("value"), (kind or "").lower(), line, errors)
    if len(errors) > n_before:
        return None
    assert user and item and kind and ts is not None
    return EventRecord(user_id=user, item_id=item, event=kind.lower(), value=value, timestamp=ts)


def _value(raw: Any, kind: str, line: int, errors: list[RowError]) -> float | None:
    if (
        raw is None
        or (isinstance(raw, str) and not raw.strip())
        or (isinstance(raw, float) and math.isnan(raw))
    ):
        if kind == "rating":
            errors.append(RowError(line, "value", "a rating event needs a value"))
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        errors.append(RowError(line, "value", f"{raw!r} is not a number"))
        return None
    if not math.isfinite(value):
        errors.append(RowError(line, "value", "must be finite"))
        return None
    if kind == "view" and not 0.0 <= value <= 1.0:
        errors.append(RowError(line, "value", f"watch ratio {value} is outside 0..1"))
        return None
    return value


def _comment(line: int, row: dict[str, Any], errors: list[RowError]) -> CommentRecord | None:
    n_before = len(errors)
    user = _require(row, "user_id", line, errors)
    item = _require(row, "item_id", line, errors)
    text = _require(row, "text", line, errors)
    ts = _timestamp(row, line, errors)
    if len(errors) > n_before:
        return None
    assert user and item and text and ts is not None
    return CommentRecord(user_id=user, item_id=item, text=text, timestamp=ts)
