"""Bounds on what users hand mmrec, in one place so the docs, the readers and the API agree.

Every text that reaches a model costs time linear in its length (the bundled E5 reads every token:
about 2.4 KB/s of comment analysis on a loaded 2-core machine), so unbounded input is a hang. Each
bound is stated in the README's "Limits" section; oversized input is rejected with the field named,
or (comments) truncated with a warning, never processed in full.
"""

from __future__ import annotations

import time

# Events and comments (mmrec ingest, Library.add_events / add_comments, POST /api/events).
MAX_ID_CHARS = 1024  # user_id and item_id (item ids are relative paths; PATH_MAX is 4096 bytes)
MAX_COMMENT_CHARS = 2000  # longer comments are truncated to this with a warning in the ingest report
MAX_FIELD_CHARS = 1 << 20  # any one field of an events/comments/manifest row (CSV, JSONL, Parquet)
RATING_RANGE = (0.0, 5.0)  # star ratings; the profile's midpoint is 3 (mmrec.profiles.update)
WATCH_RATIO_RANGE = (0.0, 1.0)  # a view's value: the share of the item watched
MIN_TIMESTAMP = 0.0  # 1970-01-01 UTC
MAX_FUTURE_S = 86_400.0  # a timestamp may be at most one day ahead of this machine's clock (clock skew)

# Queries (mmrec search, describe-user, analyze; the same calls behind the HTTP API).
MAX_QUERY_CHARS = 1000  # a search query
MAX_DESCRIPTION_CHARS = 2000  # a user's self-description (encoded like a query)
MAX_ANALYZE_CHARS = MAX_COMMENT_CHARS  # one text given to `mmrec analyze` / Library.analyze

# Item metadata (sidecar JSON and manifest rows).
MAX_TITLE_CHARS = 1000
MAX_ITEM_DESCRIPTION_CHARS = 10_000
MAX_TAGS = 100
MAX_TAG_CHARS = 200


def max_timestamp(now: float | None = None) -> float:
    """The latest accepted event time: ``now`` (default: this machine's clock) plus ``MAX_FUTURE_S``."""
    return (time.time() if now is None else now) + MAX_FUTURE_S


def too_long(value: str, limit: int) -> str | None:
    """The reason a text is refused, or None when it fits within ``limit`` characters."""
    if len(value) <= limit:
        return None
    return f"{len(value)} characters; the limit is {limit}"


def check_item_text(where: str, item_id: str | None, title: str, description: str, tags: list[str]) -> None:
    """Refuse item metadata (a sidecar or a manifest row at ``where``) above the bounds, naming the field."""
    from mmrec.errors import InvalidInputError

    for name, value, limit in (
        ("item_id", item_id or "", MAX_ID_CHARS),
        ("title", title, MAX_TITLE_CHARS),
        ("description", description, MAX_ITEM_DESCRIPTION_CHARS),
    ):
        if reason := too_long(value, limit):
            raise InvalidInputError(where, name, reason)
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(where, "tags", f"{len(tags)} tags; the limit is {MAX_TAGS}")
    for tag in tags:
        if reason := too_long(tag, MAX_TAG_CHARS):
            raise InvalidInputError(where, "tags", f"a tag of {reason}")
