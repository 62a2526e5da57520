"""The contract between the encode runner and the engines that run its mapper somewhere.

The runner hands an engine a :class:`Work` (what to do to each file, the same for every engine)
and a stream of :class:`FileTask`; the engine yields ``(task, FileResult | exception)`` in
completion order. An exception is that file's outcome (a media error, a timeout, a crashed
worker), never the run's; a whole engine that stops working raises :class:`PoolBrokenError`.
The runner alone writes, so an engine never touches the library.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

from encoders.media.decode import DecodedMedia, DecodeSpec
from encoders.media.thumbnail import ThumbnailImage
from mmrec.errors import InvalidInputError
from pipelines.discover import ItemMeta
from pipelines.item_encoder import EncodedVectors


class Mode(str, Enum):
    """How the work is split between workers and batched encoders (printed by every run)."""

    WHOLE_FILE = "whole-file"  # CPU workers decode and encode whole files, one thread each
    DECODE_BATCHED = "decode-batched"  # workers decode; encoders run batched across files


MODES = tuple(m.value for m in Mode)


def choose_mode(device: str, override: str | Mode | None = None) -> Mode:
    """The mode for the device the encoders run on, unless the user named one.

    On a GPU the models are fast and batching across files is what feeds them; on a CPU
    the models are the bottleneck, batching barely helps them, and one single-threaded worker
    per core encoding whole files is as fast as one process using every core (measured).
    """
    if override is not None:
        try:
            return Mode(override)
        except ValueError:
            raise InvalidInputError(
                "mmrec encode", "mode", f"unknown mode {override!r}; expected one of {', '.join(MODES)}"
            ) from None
    return Mode.DECODE_BATCHED if device.startswith("cuda") else Mode.WHOLE_FILE


class TaskTimeoutError(Exception):
    """A task ran past its time budget; its worker was killed and replaced."""


class WorkerCrashedError(Exception):
    """The worker process died (segfault, abort, OOM kill) while running a task."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:  # crosses processes (Ray rows)
        return (type(self), (str(self), self.exitcode))


class PoolBrokenError(Exception):
    """The pool itself stopped working (every worker died at start-up, or it was shut down):
    a fault of the environment, never of the input that happened to be scheduled."""


@dataclass(frozen=True)
class Work:
    """What the mapper does to every file (picklable: it travels to workers and Ray actors).

    ``models`` is the profile name or config path: workers load their own models from it.
    ``spec`` is what decode-only workers decode (whole-file workers derive it from their models).
    ``device`` is where batched encoders run in ``decode-batched`` mode.
    """

    mode: Mode
    models: str
    device: str
    spec: DecodeSpec | None
    frame_count: int = 16
    speech: bool = True
    timeout_s: float = 300.0
    batch_size: int = 32


@dataclass(frozen=True)
class FileTask:
    """One file to map: its path and the metadata its text vectors come from."""

    path: str
    meta: ItemMeta


@dataclass
class FileResult:
    """A mapped file. ``encoded`` is None when the driver still has to encode it (batched);
    ``media`` keeps the probe and warnings (frames and samples dropped once encoded)."""

    media: DecodedMedia
    encoded: EncodedVectors | None
    decode_s: float = 0.0
    encode_s: float = 0.0
    thumbnail: ThumbnailImage | None = None
    thumbnail_s: float = 0.0

    def light(self) -> FileResult:
        """The result without pixels and samples, once they are encoded (what travels back)."""
        return replace(self, media=replace(self.media, frames=None, audio={}))


class Engine(Protocol):
    """Where the mapper runs: ``start`` proves workers can run ``work`` (models load) before
    anything is recorded, ``map_files`` streams results in completion order, ``close`` frees."""

    name: str

    def start(self, work: Work) -> None: ...

    def map_files(
        self, work: Work, tasks: Iterable[FileTask]
    ) -> Iterator[tuple[FileTask, FileResult | BaseException]]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def worker_pid(_: object = None) -> int:
    """A task that does nothing: proves a worker can start and answer (picklable, top level)."""
    return os.getpid()
