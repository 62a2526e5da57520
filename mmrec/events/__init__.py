"""User events and comments: validated reading, an idempotent SQLite store, ingestion."""

from mmrec.events.ingest import Analyzer, IngestReport, ingest
from mmrec.events.reader import ReadResult, parse_rows, parse_timestamp, read_events
from mmrec.events.records import EVENT_KINDS, CommentRecord, EventFileError, EventRecord, RowError, RowWarning
from mmrec.events.store import EventStore, StoredComment

__all__ = [
    "EVENT_KINDS",
    "Analyzer",
    "CommentRecord",
    "EventFileError",
    "EventRecord",
    "EventStore",
    "IngestReport",
    "ReadResult",
    "RowError",
    "RowWarning",
    "StoredComment",
    "ingest",
    "parse_rows",
    "parse_timestamp",
    "read_events",
]
