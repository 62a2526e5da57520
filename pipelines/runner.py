"""The encode runner: reader → mapper → writer in one loop, with the seconds each stage took.

The reader is the plan's list of files, the mapper is an :class:`~pipelines.engines.Engine`
running the mode's work (whole-file: decode + encode per file in workers; decode-batched:
decode in workers, encode batched), and the writer is the caller's (``encode_job`` fuses and
commits through ``LibraryStore.commit_items``). Results the engine did not encode are encoded
here in batches; encoded results are written in batches. The loop is the same for every engine
and mode, so a slow stage shows in the same per-stage timings whichever runs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from pipelines.engines.base import (
    Engine,
    FileResult,
    FileTask,
    PoolBrokenError,
    TaskTimeoutError,
    Work,
    WorkerCrashedError,
)
from pipelines.engines.base import worker_pid as worker_ready
from pipelines.engines.local import LocalEngine, SerialEngine
from pipelines.item_encoder import EncodedVectors

# Older import paths: thumbnails, tests and scripts import these from here.
__all__ = [
    "Engine",
    "LocalEngine",
    "PoolBrokenError",
    "SerialEngine",
    "StageTimer",
    "TaskPool",
    "TaskTimeoutError",
    "Writer",
    "WorkerCrashedError",
    "run_stages",
    "worker_ready",
]


class TaskPool(Protocol):
    """Any picklable function over inputs, results in completion order (``LocalEngine``,
    ``SerialEngine``): what thumbnail backfills run on."""

    def map_decode(
        self, fn: Callable[[object], object], inputs: Iterable[object], timeout_s: float
    ) -> Iterator[tuple[object, object]]: ...

    def close(self) -> None: ...


class StageTimer:
    """Seconds spent per stage, accumulated over a run (the slow stage is visible at a glance)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds

    def describe(self) -> str:
        return " ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}


Mapped = tuple[FileTask, FileResult]


class Writer(Protocol):
    """The runner's writer: encodes what the engine left to it, writes, records failures."""

    def encode(self, batch: list[Mapped]) -> list[EncodedVectors]:
        """Encode decoded files in one batch in this process (``decode-batched`` on the local engine)."""
        ...

    def write(self, batch: list[Mapped]) -> None:
        """Write encoded files (every ``FileResult.encoded`` is set) as one commit."""
        ...

    def fail(self, task: FileTask, exc: BaseException) -> None:
        """A file's failure; raising here (``--fail-fast``, a broken pool) stops the run."""
        ...

    def tick(self) -> None:
        """Called after every result (progress display)."""
        ...


def run_stages(
    engine: Engine, work: Work, tasks: Iterable[FileTask], writer: Writer, timer: StageTimer
) -> None:
    """The one loop: every file the engine maps is failed, encoded in a batch here, or written.

    A batch is written only once all of its files are fully encoded, and each write is one
    commit, so a run killed at any moment (or an engine that breaks mid-stream) never leaves
    half of a batch: the files not written are simply encoded again by the next run.
    """
    to_encode: list[Mapped] = []
    to_write: list[Mapped] = []
    size = max(1, work.batch_size)

    def encode_here(batch: list[Mapped]) -> None:
        with timer.stage("encode"):
            encoded = writer.encode(batch)
        for (_, result), enc in zip(batch, encoded, strict=True):
            result.encoded = enc
        to_write.extend(batch)

    waited = time.perf_counter()
    for task, result in engine.map_files(work, tasks):
        timer.add("wait_workers", time.perf_counter() - waited)
        if isinstance(result, BaseException):
            writer.fail(task, result)
        else:
            timer.add("decode", result.decode_s)
            timer.add("encode", result.encode_s)
            timer.add("thumbnail", result.thumbnail_s)
            (to_write if result.encoded is not None else to_encode).append((task, result))
            if len(to_encode) >= size:
                encode_here(to_encode)
                to_encode = []
            if len(to_write) >= size:
                writer.write(to_write)
                to_write = []
        writer.tick()
        waited = time.perf_counter()
    if to_encode:
        encode_here(to_encode)
    if to_write:
        writer.write(to_write)
