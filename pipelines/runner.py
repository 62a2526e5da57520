"""A tiny stage runner: where decode work runs, and how long each stage took.

Stages never talk to pebble directly; they hand a picklable function and a list of inputs to an
:class:`Engine` and get ``(input, result-or-exception)`` pairs back in completion order. That is
the whole contract, so a Ray engine can replace :class:`LocalEngine` without touching a stage.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from pebble import ProcessExpired, ProcessPool

T = TypeVar("T")


class TaskTimeoutError(Exception):
    """A task ran past its time budget; its worker was killed and replaced."""


class WorkerCrashedError(Exception):
    """The worker process died (segfault, abort, OOM kill) while running a task."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


class PoolBrokenError(Exception):
    """The pool itself stopped working (every worker died at start-up, or it was shut down):
    a fault of the environment, never of the input that happened to be scheduled."""


def worker_ready(_: object = None) -> int:
    """A task that does nothing: proves a worker can start and answer (picklable, top level)."""
    return os.getpid()


class Engine(Protocol):
    """Runs ``fn(x)`` for each input somewhere else and yields results as they finish.

    ``map_decode`` keeps at most a bounded number of tasks in flight (memory stays flat however long
    the input list is), yields ``(x, result)`` or ``(x, exception)`` in completion order, and turns a
    hang into :class:`TaskTimeoutError` and a dead worker into :class:`WorkerCrashedError` for that
    input only. ``close`` releases the workers.
    """

    def map_decode(
        self, fn: Callable[[T], Any], inputs: Iterable[T], timeout_s: float
    ) -> Iterator[tuple[T, Any | BaseException]]: ...

    def close(self) -> None: ...


class SerialEngine:
    """In-process engine for single files and the naive baseline: no isolation, no parallelism."""

    def map_decode(
        self, fn: Callable[[T], Any], inputs: Iterable[T], timeout_s: float
    ) -> Iterator[tuple[T, Any | BaseException]]:
        for x in inputs:
            try:
                yield x, fn(x)
            except Exception as exc:  # a bad file is a result, not a crash of the run
                yield x, exc

    def close(self) -> None:
        return None


def _mp_context(preload: Sequence[str] = ()) -> Any:
    """forkserver on Linux: workers start clean, not as forks of a process holding torch threads.

    ``preload`` modules are imported once by the fork server, so every worker (and every
    replacement after a timeout, a crash or ``max_tasks``) starts with them already in memory
    instead of paying seconds to import torch again. It only takes effect if this process has
    not started its fork server yet.
    """
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(list(preload))
        return ctx
    return multiprocessing.get_context("spawn")


def _background_priority() -> None:
    """Decode workers yield the CPU to the model threads of the main process.

    Decoding is a small share of the work on CPU; at the lowest priority it fills the gaps the
    models leave instead of preempting torch's threads, which wait for each other at every operator.
    """
    with contextlib.suppress(OSError):
        os.nice(19)


class LocalEngine:
    """pebble process pool: per-task timeout, crash isolation, workers recycled every ``max_tasks``."""

    def __init__(
        self,
        workers: int,
        max_in_flight: int | None = None,
        max_tasks: int = 50,
        preload: Sequence[str] = (),
    ) -> None:
        self.workers = max(1, int(workers))
        self.max_in_flight = max_in_flight or 4 * self.workers
        self._pool = ProcessPool(
            max_workers=self.workers,
            max_tasks=max_tasks,
            context=_mp_context(preload),
            initializer=_background_priority,
        )

    def map_decode(
        self, fn: Callable[[T], Any], inputs: Iterable[T], timeout_s: float
    ) -> Iterator[tuple[T, Any | BaseException]]:
        pending: dict[Future, T] = {}
        source = iter(inputs)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < self.max_in_flight:
                try:
                    x = next(source)
                except StopIteration:
                    exhausted = True
                    break
                try:
                    fut = self._pool.schedule(fn, args=(x,), timeout=timeout_s)
                except RuntimeError as exc:  # pebble refuses new work once the pool broke
                    yield x, PoolBrokenError(str(exc) or "the worker pool is not running")
                    continue
                pending[fut] = x
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), _outcome(fut, timeout_s)

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()


def _outcome(fut: Future, timeout_s: float) -> Any | BaseException:
    try:
        return fut.result()
    except FutureTimeout:
        return TaskTimeoutError(f"took longer than {timeout_s:g} s; the worker was killed")
    except ProcessExpired as exc:
        return WorkerCrashedError(f"worker process died (exit code {exc.exitcode})", exc.exitcode)
    except BrokenProcessPool as exc:
        return PoolBrokenError(str(exc) or "the worker pool broke")
    except Exception as exc:
        return exc


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
