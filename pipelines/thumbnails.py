"""Thumbnails in the pipelines: made beside encoding, and backfilled into libraries that lack them.

At encode time the picture comes from media a worker has already decoded, so it costs a few
milliseconds and no extra read; it is committed with its item. A thumbnail is never worth an
item: any failure here is a warning and the item is stored without one. Libraries encoded
before thumbnails existed get them from :func:`backfill_thumbnails`, which decodes only what a
picture needs, in the same kind of isolated, time-bounded worker pool as encoding.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from encoders.media.decode import DecodedMedia
from encoders.media.thumbnail import THUMBNAIL_MAX_SIDE, ThumbnailImage, make_thumbnail, thumbnail_for_file
from mmrec.store.thumbnails import BackfillStep

if TYPE_CHECKING:  # decode workers import this module: keep them free of the store and the pool
    from mmrec.store import LibraryStore
    from pipelines.runner import TaskPool

log = logging.getLogger(__name__)

MEDIA_KINDS = ("video", "audio", "image")
THUMBNAIL_TIMEOUT_S = 120.0
WRITE_EVERY = 32  # thumbnails per store transaction: a killed backfill keeps what it wrote
WORKER_PRELOAD = ("numpy", "av", "PIL.Image", "encoders.media.thumbnail")


def safe_thumbnail(
    media: DecodedMedia, max_side: int = THUMBNAIL_MAX_SIDE
) -> tuple[ThumbnailImage | None, float]:
    """(thumbnail or None, seconds spent); never raises: a failure is logged and noted on the item."""
    t0 = time.perf_counter()
    try:
        thumb = make_thumbnail(media, max_side)
    except Exception as exc:  # a bad picture must not cost the item its vectors
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("%s: stored without a thumbnail (%s)", media.info.path, reason)
        media.warnings.append(f"thumbnail not made: {reason}")
        thumb = None
    return thumb, time.perf_counter() - t0


def as_stored(thumb: ThumbnailImage | None) -> tuple[bytes, str] | None:
    """The (bytes, MIME type) pair ``EncodedItem.thumbnail`` takes."""
    return None if thumb is None else (thumb.data, thumb.mime)


# ====================================================================== backfill
@dataclass(frozen=True)
class ThumbnailTask:
    """One item to draw (picklable): its key for the store, its id for reports, its file."""

    key: int
    item_id: str
    path: str
    max_side: int = THUMBNAIL_MAX_SIDE


@dataclass
class BackfillReport:
    """What a backfill did: thumbnails written, items skipped (already had one), failures by item."""

    made: int = 0
    already: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    total: int = 0
    elapsed_s: float = 0.0


def thumbnail_task(task: ThumbnailTask) -> ThumbnailImage | None:
    """Top-level (picklable) worker function; media errors propagate as typed exceptions."""
    return thumbnail_for_file(task.path, task.max_side)


def backfill_thumbnails(
    store: LibraryStore,
    force: bool = False,
    workers: int | None = None,
    max_side: int = THUMBNAIL_MAX_SIDE,
    timeout_s: float = THUMBNAIL_TIMEOUT_S,
    progress: Callable[[BackfillStep], None] | None = None,
    engine: TaskPool | None = None,
) -> BackfillReport:
    """Give every ok media item without a thumbnail one (every one with ``force``).

    Resumable: thumbnails are written every ``WRITE_EVERY`` items and items that have one are
    skipped, so a killed run picks up where it stopped. A file that is gone, damaged, hangs or
    crashes its decoder is reported and skipped, never fatal. Without ``force`` a thumbnail an
    encode commits meanwhile is kept, not overwritten with one made from the older file.
    """
    from pipelines.runner import LocalEngine, SerialEngine

    t0 = time.perf_counter()
    have = set() if force else store.thumbnail_keys()
    report = BackfillReport()
    todo: list[ThumbnailTask] = []
    for rec in store.items():
        if rec.kind not in MEDIA_KINDS or not rec.path or rec.key is None:
            continue
        if rec.key in have:
            report.already += 1
        else:
            todo.append(ThumbnailTask(int(rec.key), rec.item_id, rec.path, max_side))
    report.total = len(todo)
    if not todo:
        report.elapsed_s = time.perf_counter() - t0
        return report
    n = min(os.cpu_count() or 1, len(todo)) if workers is None else workers
    own_engine = engine is None
    if engine is None:
        engine = (
            SerialEngine()
            if n == 0
            else LocalEngine(n, max_in_flight=2 * n + 2, max_tasks=200, preload=WORKER_PRELOAD)
        )
    rows: list[tuple[int, bytes, str]] = []
    done = 0
    try:
        for task, result in engine.map_decode(thumbnail_task, todo, timeout_s):
            done += 1
            reason: str | None = None
            if isinstance(result, BaseException):
                reason = str(getattr(result, "reason", None) or result) or type(result).__name__
                reason = f"{type(result).__name__}: {reason}"
            elif not isinstance(result, ThumbnailImage):
                reason = "nothing in the file could be drawn"
            else:
                rows.append((task.key, result.data, result.mime))
            if reason is not None:
                report.failures.append((task.item_id, reason))
            if len(rows) >= WRITE_EVERY:
                report.made += store.put_thumbnails(rows, replace=force)
                rows = []
            if progress is not None:
                progress(
                    BackfillStep(
                        task.item_id, task.path, reason is None, reason, done, len(todo), report.already
                    )
                )
        report.made += store.put_thumbnails(rows, replace=force)
    finally:
        if own_engine:
            engine.close()
    report.elapsed_s = time.perf_counter() - t0
    return report
