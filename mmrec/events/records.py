"""The rows users produce: interaction events and comments, plus the errors bad rows turn into."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from mmrec.errors import MmrecError

EventKind = Literal["view", "like", "share", "comment", "skip", "dislike", "rating"]
EVENT_KINDS: tuple[str, ...] = ("view", "like", "share", "comment", "skip", "dislike", "rating")


@dataclass(frozen=True)
class EventRecord:
    """One interaction; ``value`` is a watch ratio in [0, 1] for views or the rating for ratings."""

    user_id: str
    item_id: str
    event: str
    value: float | None
    timestamp: float  # unix seconds


@dataclass(frozen=True)
class CommentRecord:
    """A comment a user wrote on an item."""

    user_id: str
    item_id: str
    text: str
    timestamp: float

    @property
    def text_hash(self) -> str:
        """Part of the comment's natural key: the same user may comment twice in one second."""
        return hashlib.sha1(self.text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class RowError:
    """A rejected input row: where it is (1-based line, header = line 1 for CSV), which field, why."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class RowWarning:
    """A row that was kept, but changed (e.g. a comment truncated to the length limit): where, which field, how."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


class EventFileError(MmrecError, ValueError):
    """The file as a whole cannot be read (missing, unknown format, no usable columns)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
