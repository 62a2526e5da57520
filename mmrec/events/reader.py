"""Reading event and comment files (CSV, JSONL, Parquet): validate every row, keep the good ones.

A file is a comments file when it has a ``text`` column, an events file otherwise. Bad rows never stop
the read: each becomes a :class:`RowError` with its line number, and the rest are returned.

Text files are UTF-8 unless a byte-order mark says UTF-8/16/32 or the NUL pattern of the first bytes
says UTF-16 without one; anything else that is not valid UTF-8 (latin-1, cp1252: indistinguishable
from each other by their bytes) is refused as a whole with the line and byte, unless the caller names
the encoding. Values and sizes are bounded (``mmrec.limits``): out-of-range rows are rejected per row
with the field named; comments longer than ``MAX_COMMENT_CHARS`` are truncated with a warning.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmrec.events.records import (
    EVENT_KINDS,
    CommentRecord,
    EventFileError,
    EventRecord,
    RowError,
    RowWarning,
)
from mmrec.limits import (
    MAX_COMMENT_CHARS,
    MAX_FIELD_CHARS,
    MAX_ID_CHARS,
    MIN_TIMESTAMP,
    RATING_RANGE,
    WATCH_RATIO_RANGE,
    max_timestamp,
    too_long,
)

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
    warnings: list[RowWarning] = field(default_factory=list)


def read_events(path: str | Path, encoding: str | None = None) -> ReadResult:
    """Read an events or comments file; the format comes from the suffix (.csv, .jsonl/.ndjson, .parquet).

    ``encoding`` overrides the detection of a text file's encoding (e.g. "latin-1").
    """
    p = Path(path)
    if not p.is_file():
        raise EventFileError(str(p), "file not found")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise EventFileError(str(p), f"unknown encoding {encoding!r}") from None
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = _csv_rows(p, "\t" if suffix == ".tsv" else ",", encoding)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows = _jsonl_rows(p, encoding)
    elif suffix == ".parquet":
        rows = _parquet_rows(p)
    else:
        raise EventFileError(str(p), f"unsupported format {suffix!r}: use .csv, .jsonl or .parquet")
    return _parse(rows)


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SAMPLE_BYTES = 1 << 16


def detect_encoding(p: Path) -> str:
    """The encoding of a text file: its BOM, UTF-16 by its NUL pattern, else UTF-8 when its start is valid.

    Raises :class:`EventFileError` naming the file, line and byte when the start is neither: single-byte
    encodings (latin-1, cp1252, ...) cannot be told apart from their bytes, so the caller must name one.
    """
    with p.open("rb") as fh:
        sample = fh.read(_SAMPLE_BYTES)
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    even, odd = sample[0::2], sample[1::2]
    if len(sample) >= 4 and odd.count(0) > len(odd) // 2 and even.count(0) == 0:
        return "utf-16-le"  # ASCII-range text in UTF-16 without a BOM: every second byte is NUL
    if len(sample) >= 4 and even.count(0) > len(even) // 2 and odd.count(0) == 0:
        return "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=len(sample) < _SAMPLE_BYTES)
    except UnicodeDecodeError as exc:
        raise _decode_error(p, "utf-8", sample, exc) from None
    return "utf-8"


def _decode_error(p: Path, encoding: str, data: bytes, exc: UnicodeDecodeError) -> EventFileError:
    line = data[: exc.start].count(b"\n") + 1
    return EventFileError(
        str(p),
        f"line {line} is not valid {encoding} (byte 0x{data[exc.start]:02x} at offset {exc.start}: "
        f"{exc.reason}); save the file as UTF-8, or name its encoding (`mmrec ingest --encoding latin-1`)",
    )


def _text_lines(p: Path, encoding: str | None) -> Iterator[str]:
    """Decoded lines (newlines kept, as csv wants); a decoding error later in the file names its line."""
    name = encoding or detect_encoding(p)
    count = 0
    with p.open("rb") as raw, io.TextIOWrapper(raw, encoding=name, newline="") as fh:
        try:
            for line in fh:
                count += 1
                yield line
        except UnicodeDecodeError as exc:
            raise EventFileError(
                str(p),
                f"not valid {name} after line {count} ({exc.reason}); save the file as UTF-8, "
                "or name its encoding (`mmrec ingest --encoding latin-1`)",
            ) from None


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
            warnings = result.warnings if result else []
            result = ReadResult(kind=found, errors=errors, warnings=warnings)
        assert result is not None
        if _oversized(line, row, result.errors):
            continue
        if result.kind == "comments":
            rec = _comment(line, row, result.errors, result.warnings)
            if rec:
                result.comments.append(rec)
        else:
            ev = _event(line, row, result.errors)
            if ev:
                result.events.append(ev)
    return result or ReadResult(kind="events")


def _csv_rows(
    p: Path, delimiter: str, encoding: str | None
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    consumed = 0  # physical lines the csv reader has pulled: a row's first line is the count before it + 1

    def counted() -> Iterator[str]:
        nonlocal consumed
        for text in _text_lines(p, encoding):
            consumed += 1
            yield text

    previous_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        reader = csv.DictReader(counted(), delimiter=delimiter)
        try:
            fieldnames = reader.fieldnames
        except csv.Error as exc:
            raise EventFileError(str(p), f"unreadable header row ({exc})") from None
        if not fieldnames:
            raise EventFileError(str(p), "empty file: no header row")
        while True:
            start = consumed + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reason = str(exc)
                if "field limit" in reason:
                    reason = f"a field is longer than {MAX_FIELD_CHARS} characters (the limit)"
                yield start, RowError(start, "row", reason)
                continue
            if None in row:
                n_fields = len(row[None]) + len(fieldnames)
                yield start, RowError(start, "row", f"{n_fields} fields, header has {len(fieldnames)}")
            else:
                yield start, row
    finally:
        csv.field_size_limit(previous_limit)


def _jsonl_rows(p: Path, encoding: str | None) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    for n, raw in enumerate(_text_lines(p, encoding), start=1):
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


def parse_timestamp(value: Any, now: float | None = None) -> float:
    """Unix seconds (int/float/numeric string) or ISO 8601 (naive means UTC) -> float unix seconds.

    Accepted times run from 1970 to ``MAX_FUTURE_S`` past ``now`` (default: this machine's clock): a
    time far in the future would outweigh every other event of its user under time decay.
    """
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        try:
            ts = float(text)
        except ValueError:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            if not math.isfinite(ts):
                raise ValueError("must be a finite unix time")
            return _in_time_range(ts, now)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return _in_time_range(dt.timestamp(), now)


def _in_time_range(ts: float, now: float | None) -> float:
    latest = max_timestamp(now)
    if ts < MIN_TIMESTAMP:
        raise ValueError("before 1970-01-01")
    if ts > latest:
        limit = datetime.fromtimestamp(latest, tz=timezone.utc).isoformat(timespec="seconds")
        raise ValueError(f"in the future: the latest accepted time is {limit}")
    return ts


def _oversized(line: int, row: dict[str, Any], errors: list[RowError]) -> bool:
    """Refuse a row holding a text field above ``MAX_FIELD_CHARS`` (any source, not only CSV)."""
    for name, value in row.items():
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            errors.append(RowError(line, name, f"{too_long(value, MAX_FIELD_CHARS)} for one field"))
            return True
    return False


def _identifier(row: dict[str, Any], name: str, line: int, errors: list[RowError]) -> str | None:
    value = _require(row, name, line, errors)
    if value is not None and (reason := too_long(value, MAX_ID_CHARS)):
        errors.append(RowError(line, name, reason))
        return None
    return value


def _timestamp(row: dict[str, Any], line: int, errors: list[RowError]) -> float | None:
    raw = _require(row, "timestamp", line, errors)
    if raw is None:
        return None
    try:
        return parse_timestamp(row["timestamp"])
    except (ValueError, OverflowError) as exc:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        errors.append(
            RowError(line, "timestamp", f"{shown!r} is not an accepted unix time or ISO 8601 date ({exc})")
        )
        return None


def _event(line: int, row: dict[str, Any], errors: list[RowError]) -> EventRecord | None:
    n_before = len(errors)
    user = _identifier(row, "user_id", line, errors)
    item = _identifier(row, "item_id", line, errors)
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
    for event, what, (low, high) in (
        ("view", "watch ratio", WATCH_RATIO_RANGE),
        ("rating", "rating", RATING_RANGE),
    ):
        if kind == event and not low <= value <= high:
            errors.append(RowError(line, "value", f"{what} {value:g} is outside {low:g}..{high:g}"))
            return None
    return value


def _comment(
    line: int, row: dict[str, Any], errors: list[RowError], warnings: list[RowWarning]
) -> CommentRecord | None:
    n_before = len(errors)
    user = _identifier(row, "user_id", line, errors)
    item = _identifier(row, "item_id", line, errors)
    text = _require(row, "text", line, errors)
    ts = _timestamp(row, line, errors)
    if len(errors) > n_before:
        return None
    assert user and item and text and ts is not None
    if reason := too_long(text, MAX_COMMENT_CHARS):
        warnings.append(RowWarning(line, "text", f"{reason}: truncated to the first {MAX_COMMENT_CHARS}"))
        text = text[:MAX_COMMENT_CHARS].rstrip()
    return CommentRecord(user_id=user, item_id=item, text=text, timestamp=ts)
