"""Ingest one events or comments file into a library's event store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mmrec.errors import InvalidInputError
from mmrec.events.reader import read_events
from mmrec.events.records import RowError
from mmrec.events.store import Analysis, EventStore


class Analyzer(Protocol):
    """``encoders.comments.CommentAnalyzer`` as the core layer sees it."""

    name: str

    def analyze(self, texts: Sequence[str]) -> Sequence[Analysis]: ...


@dataclass
class IngestReport:
    """What one ingest did; ``users`` are those with new rows (their profiles need refreshing)."""

    kind: str
    added: int
    duplicates: int
    errors: list[RowError] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    new_rows: list[Any] = field(default_factory=list)


def ingest(library_path: str | Path, file: str | Path, analyzer: Analyzer | None = None) -> IngestReport:
    """Validate and store ``file``; comments are analysed (only the new ones) before they are stored."""
    result = read_events(file)
    store = EventStore.open(library_path)
    try:
        if result.kind == "comments":
            fresh = store.new_comments(result.comments)
            if fresh and analyzer is None:
                raise InvalidInputError(
                    str(file), "text", "comments need an analyzer (encoders.comments.load_analyzer)"
                )
            analyses = analyzer.analyze([c.text for c in fresh]) if fresh and analyzer else []
            added = store.add_comments(fresh, analyses, analyzer.name if analyzer else "")
            total = len(result.comments)
        else:
            added = store.add_events(result.events)
            total = len(result.events)
    finally:
        store.close()
    return IngestReport(
        kind=result.kind,
        added=len(added),
        duplicates=total - len(added),
        errors=result.errors,
        users={r.user_id for r in added},
        new_rows=list(added),
    )
