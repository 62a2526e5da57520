"""The local engine: a pebble process pool on this machine (the default), and its serial twin.

``LocalEngine.map_decode`` is the primitive (any picklable function over a list of inputs, with a
per-task timeout and crash isolation; thumbnails reuse it); ``map_files`` runs the encode
mapper on it: ``decode_encode_task`` in ``whole-file`` mode, ``decode_task`` (the driver then
encodes in batches) in ``decode-batched`` mode.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import TypeVar

from pebble import ProcessExpired, ProcessPool

from encoders.media.decode import decode_media
from pipelines.decode import Decoded, DecodeTask, decode_task, spec_for_model_set
from pipelines.encode_worker import EncodeTask, ReadyCheck, WorkerEncoded, decode_encode_task, worker_ready
from pipelines.engines.base import (
    FileResult,
    FileTask,
    Mode,
    PoolBrokenError,
    TaskTimeoutError,
    Work,
    WorkerCrashedError,
    worker_pid,
)
from pipelines.errors import WorkerStartError
from pipelines.item_encoder import EncodeInput, encode_batch
from pipelines.thumbnails import safe_thumbnail

T = TypeVar("T")
R = TypeVar("R")

STARTUP_TIMEOUT_S = 300.0  # the start-up probe: a worker imports torch and loads its models first
# Imported once by the fork server, so workers (and their replacements) start without re-importing.
DECODE_WORKER_PRELOAD = ("numpy", "av", "PIL.Image", "pipelines.decode")
ENCODE_WORKER_PRELOAD = (*DECODE_WORKER_PRELOAD, "torch", "onnxruntime", "pipelines.encode_worker")


def _mp_context(preload: Sequence[str] = ()) -> BaseContext:
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
    import os

    with contextlib.suppress(OSError):
        os.nice(19)


def _as_result(out: Decoded | WorkerEncoded) -> FileResult:
    if isinstance(out, WorkerEncoded):
        return FileResult(out.media, out.encoded, out.decode_s, out.encode_s, out.thumbnail, out.thumbnail_s)
    return FileResult(out.media, None, out.seconds, 0.0, out.thumbnail, out.thumbnail_s)


def _task_for(work: Work, task: FileTask) -> DecodeTask | EncodeTask:
    if work.mode is Mode.WHOLE_FILE:
        return EncodeTask(task.path, work.frame_count, task.meta, work.models, work.speech)
    assert work.spec is not None, "decode-batched work needs the decode spec"
    return DecodeTask(path=task.path, spec=work.spec)


class LocalEngine:
    """pebble process pool: per-task timeout, crash isolation, workers recycled every ``max_tasks``."""

    name = "local"

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

    @classmethod
    def for_work(cls, workers: int, mode: Mode, batch_size: int) -> LocalEngine:
        """A pool shaped for the mode: whole-file workers preload torch and live longer."""
        whole = mode is Mode.WHOLE_FILE
        try:
            return cls(
                workers,
                max_in_flight=batch_size + 2 * max(1, workers),
                max_tasks=500 if whole else 50,
                preload=ENCODE_WORKER_PRELOAD if whole else DECODE_WORKER_PRELOAD,
            )
        except (OSError, RuntimeError) as exc:
            raise WorkerStartError(f"{type(exc).__name__}: {exc}") from exc

    def describe(self) -> str:
        return f"local ({self.workers} worker process{'es' if self.workers != 1 else ''})"

    def start(self, work: Work) -> None:
        """Run one probe task: a pool that cannot start (a script without a ``__main__`` guard)
        or models that cannot load fail once here, not as the same failure on every file."""
        if work.mode is Mode.WHOLE_FILE:
            probe = self.map_decode(
                worker_ready, [ReadyCheck(work.models, work.frame_count, work.speech)], STARTUP_TIMEOUT_S
            )
        else:
            probe = self.map_decode(worker_pid, [None], STARTUP_TIMEOUT_S)
        for _, result in probe:
            if isinstance(result, BaseException):
                self.close()
                raise WorkerStartError(f"{type(result).__name__}: {result}") from result

    def map_files(
        self, work: Work, tasks: Iterable[FileTask]
    ) -> Iterator[tuple[FileTask, FileResult | BaseException]]:
        fn = decode_encode_task if work.mode is Mode.WHOLE_FILE else decode_task
        by_path = {}
        jobs = []
        for t in tasks:
            by_path[t.path] = t
            jobs.append(_task_for(work, t))
        for job, out in self.map_decode(fn, jobs, work.timeout_s):
            yield by_path[job.path], out if isinstance(out, BaseException) else _as_result(out)

    def map_decode(
        self, fn: Callable[[T], R], inputs: Iterable[T], timeout_s: float
    ) -> Iterator[tuple[T, R | BaseException]]:
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


def _outcome(fut: Future, timeout_s: float) -> object | BaseException:
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


class SerialEngine:
    """In-process engine (``workers=0``): no isolation, no parallelism; single files and baselines.

    With ``models`` it runs the encode mapper too: whole-file mode encodes each file alone with
    this process's models, decode-batched mode only decodes (the runner encodes in batches).
    """

    name = "local"

    def __init__(self, models: object | None = None) -> None:
        self.models = models

    def describe(self) -> str:
        return "local (in this process, no workers)"

    def start(self, work: Work) -> None:
        if work.mode is Mode.WHOLE_FILE and self.models is None:
            raise WorkerStartError("whole-file mode in this process needs the loaded models")

    def map_files(
        self, work: Work, tasks: Iterable[FileTask]
    ) -> Iterator[tuple[FileTask, FileResult | BaseException]]:
        for task in tasks:
            try:
                yield task, self._map_one(work, task)
            except Exception as exc:  # a bad file is a result, not a crash of the run
                yield task, exc

    def _map_one(self, work: Work, task: FileTask) -> FileResult:
        if work.mode is Mode.DECODE_BATCHED:
            assert work.spec is not None
            return _as_result(decode_task(DecodeTask(path=task.path, spec=work.spec)))
        t0 = time.perf_counter()
        media = decode_media(task.path, spec_for_model_set(self.models, work.speech, work.frame_count))
        t1 = time.perf_counter()
        (encoded,) = encode_batch([EncodeInput(meta=task.meta, media=media)], self.models, work.speech)
        t2 = time.perf_counter()
        thumb, thumb_s = safe_thumbnail(media)
        return FileResult(media, encoded, t1 - t0, t2 - t1, thumb, thumb_s).light()

    def map_decode(
        self, fn: Callable[[T], R], inputs: Iterable[T], timeout_s: float
    ) -> Iterator[tuple[T, R | BaseException]]:
        for x in inputs:
            try:
                yield x, fn(x)
            except Exception as exc:  # a bad file is a result, not a crash of the run
                yield x, exc

    def close(self) -> None:
        return None


def default_workers(device: str = "cpu") -> int:
    """Worker processes to start when the user does not say.

    With a GPU the models are fast and decoding is the bottleneck: every core but one decodes
    while the main process batches the models on the GPU. On CPU every core runs a worker that
    decodes and encodes whole files with one torch thread (``encode_worker``).
    """
    import os

    cores = os.cpu_count() or 2
    if device.startswith("cuda"):
        return max(1, cores - 1)
    return cores
