"""The Ray engine: the same mapper on a Ray cluster with Ray Data (``mmrec encode --engine ray``).

Pipeline: the discovered file list → decode tasks → an encoder actor pool → rows streamed back
to the driver, which writes them through the one writer (``LibraryStore.commit_items``), so
identity, failures, resume and the run lock are the local engine's. Nothing is checkpointed in
Ray: a file is done when its commit landed, and the next run's plan skips it.

- ``decode-batched``: decode tasks (stateless, one CPU each) feed encoder actors that batch
  ``work.batch_size`` files per model call, one GPU each when the cluster has GPUs.
- ``whole-file``: CPU actors decode and encode one file at a time with one thread, as the local
  whole-file workers do, so the vectors are the same to the bit.

Every decode runs in a guarded child process (``encoders.media.run_guarded``): a hang is a
``DecodeTimeoutError``, a native crash a ``DecoderCrashedError``, both rows of their file. Every
per-file exception is caught in the mapper and travels back as a row (pickled), never as a failed
block (``max_errored_blocks`` would drop a whole block of good files with it).

Ray is optional: this module imports it only when an engine is made, and importing ``mmrec``
or ``pipelines`` never does.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from encoders.media.errors import MediaError
from encoders.media.guard import run_guarded
from pipelines.decode import Decoded, DecodeTask, decode_task
from pipelines.engines.base import FileResult, FileTask, Mode, PoolBrokenError, Work
from pipelines.errors import EngineStartError
from pipelines.item_encoder import EncodedVectors, EncodeInput, encode_batch

if TYPE_CHECKING:
    from encoders.registry import ModelSet

Row = dict[str, object]

# The driver keeps at least this many CPUs of the cluster free of encoder actors, for Ray
# Data's read and decode tasks: with 2 CPUs and two 1-CPU actors the pipeline hangs (Ray
# issue 44687, reproduced here).
RESERVED_CPUS = 1.0
# Rows per block handed to the decode tasks: small blocks keep results (and commits) flowing
# from the first seconds; the cap keeps the number of blocks sane for millions of files.
ROWS_PER_BLOCK = 64
RAY_INSTALL_HINT = "pip install 'mmrec[ray]'  (ray[data]>=2.54)"


def ray_available() -> bool:
    """Whether ``ray[data]`` can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.data") is not None


def _client_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("grpc") is not None


@dataclass(frozen=True)
class PoolSize:
    """The encoder actor pool: how many actors, and what each asks Ray for."""

    actors: int
    num_cpus: float
    num_gpus: float

    def describe(self) -> str:
        gpu = f", {self.num_gpus:g} GPU" if self.num_gpus else ""
        return (
            f"{self.actors} encoder actor{'s' if self.actors != 1 else ''} ({self.num_cpus:g} CPU{gpu} each)"
        )


def size_actor_pool(available: Mapping[str, float], mode: Mode) -> PoolSize:
    """Size the encoder pool from the resources Ray has free, never giving it every CPU.

    The rule: the actors together ask for at most ``CPUs - 1`` (``RESERVED_CPUS``), so Ray Data's
    tasks always find a CPU (Ray issue 44687: two 1-CPU actors on 2 CPUs hang).
    - ``whole-file``: one single-threaded actor per CPU, as the local engine has one worker per
      core, each asking for ``(CPUs - 1) / CPUs`` of a CPU (0.5 on 2 CPUs, 0.94 on 16).
    - ``decode-batched`` on CPUs: ``floor(CPUs - 1)`` 1-CPU actors beside 1-CPU decode tasks.
    - ``decode-batched`` with GPUs: one actor per GPU, with up to one CPU each from what is left.
    Below 2 CPUs there is one actor at half a CPU.
    """
    cpus = float(available.get("CPU", 0.0))
    gpus = int(available.get("GPU", 0.0))
    spare = max(0.0, cpus - RESERVED_CPUS)
    if mode is Mode.DECODE_BATCHED and gpus >= 1:
        return PoolSize(actors=gpus, num_cpus=round(min(1.0, spare / gpus), 3), num_gpus=1.0)
    if cpus < 2.0:
        return PoolSize(actors=1, num_cpus=0.5, num_gpus=0.0)
    if mode is Mode.WHOLE_FILE:
        actors = int(math.floor(cpus))
        return PoolSize(actors=actors, num_cpus=math.floor(spare / actors * 1000) / 1000, num_gpus=0.0)
    return PoolSize(actors=int(math.floor(spare)), num_cpus=1.0, num_gpus=0.0)


# ---------------------------------------------------------------- the mapper, on the cluster


def _dump(value: object) -> bytes:
    """A row's payload; an exception that cannot make the trip becomes a MediaError naming the file."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if isinstance(value, BaseException):
            pickle.loads(data)  # exceptions with odd __init__ pickle but do not unpickle
        return data
    except Exception:
        assert isinstance(value, BaseException)
        return pickle.dumps(MediaError("?", f"{type(value).__name__}: {value}"))


def _decoded(task: FileTask, work: Work) -> FileResult:
    """Decode one file in a guarded child process (a hang or a crash cannot take the worker down)."""
    assert work.spec is not None
    out = run_guarded(decode_task, DecodeTask(path=task.path, spec=work.spec), timeout_s=work.timeout_s)
    assert isinstance(out, Decoded)
    return FileResult(out.media, None, out.seconds, 0.0, out.thumbnail, out.thumbnail_s)


def decode_row(row: Row, work: Work) -> Row:
    """Decode task: ``{"i", "task"}`` → ``{"i", "out"}``, the decoded media or the file's exception."""
    task = pickle.loads(row["task"])  # type: ignore[arg-type]
    try:
        out: FileResult | BaseException = _decoded(task, work)
    except Exception as exc:
        out = exc
    return {"i": row["i"], "task": row["task"], "out": _dump(out)}


def _encode_each(models: ModelSet, work: Work, items: list[tuple[FileTask, FileResult]]) -> list[object]:
    """Encode a batch in one model call per modality; if the batch fails, each file on its own,
    so one bad file costs only its own row."""
    t0 = time.perf_counter()
    inputs = [EncodeInput(meta=t.meta, media=r.media) for t, r in items]
    try:
        encoded: list[EncodedVectors] = encode_batch(inputs, models, speech=work.speech)
    except Exception:
        outs: list[object] = []
        for one, (_, r) in zip(inputs, items, strict=True):
            t1 = time.perf_counter()
            try:
                (enc,) = encode_batch([one], models, speech=work.speech)
                r.encoded, r.encode_s = enc, time.perf_counter() - t1
                outs.append(r.light())
            except Exception as exc:
                outs.append(exc)
        return outs
    share = (time.perf_counter() - t0) / max(1, len(items))
    for (_, r), enc in zip(items, encoded, strict=True):
        r.encoded, r.encode_s = enc, share
    return [r.light() for _, r in items]


def _load_models(work: Work, device: str, threads: int) -> ModelSet:
    """The actor's models, loaded once per actor.

    On CPU they are the local whole-file worker's (``worker_models``: one thread for torch, ONNX
    Runtime and CTranslate2), so a file gets the same vectors and the same speech decision from
    either engine; a CPU actor given more than one CPU then lets torch use them.
    """
    from pipelines.encode_worker import worker_models

    if not device.startswith("cuda"):
        models = worker_models(work.models)
        if threads > 1:
            import torch

            torch.set_num_threads(threads)
    else:
        from encoders.registry import load_models

        models = load_models(work.models, device=device)
    _ = models.frames, models.text  # lazy: load now, so a model that cannot load fails the start
    return models


class BatchEncoder:
    """Encoder actor of ``decode-batched`` mode: batches of decoded rows → encoded rows."""

    def __init__(self, work: Work, device: str, threads: int) -> None:
        self.work = work
        self.models = _load_models(work, device, threads)

    def __call__(self, batch: dict[str, list[object]]) -> dict[str, list[object]]:
        outs: list[object] = [None] * len(batch["i"])
        todo: list[tuple[int, FileTask, FileResult]] = []
        for k, (task_b, out_b) in enumerate(zip(batch["task"], batch["out"], strict=True)):
            out = pickle.loads(out_b)  # type: ignore[arg-type]
            if isinstance(out, BaseException):
                outs[k] = out
            else:
                todo.append((k, pickle.loads(task_b), out))  # type: ignore[arg-type]
        if todo:
            encoded = _encode_each(self.models, self.work, [(t, r) for _, t, r in todo])
            for (k, _, _), out in zip(todo, encoded, strict=True):
                outs[k] = out
        return {"i": list(batch["i"]), "out": [_dump(o) for o in outs]}


class WholeFileEncoder:
    """Encoder actor of ``whole-file`` mode: one file decoded (guarded) and encoded at a time."""

    def __init__(self, work: Work) -> None:
        from pipelines.decode import spec_for_model_set

        self.models = _load_models(work, "cpu", 1)
        _ = (
            self.models.frames,
            self.models.text,
        )  # lazy: load now, so a model that cannot load fails the start
        self.work = Work(
            mode=work.mode,
            models=work.models,
            device="cpu",
            spec=spec_for_model_set(self.models, work.speech, work.frame_count),
            frame_count=work.frame_count,
            speech=work.speech,
            timeout_s=work.timeout_s,
            batch_size=1,
        )

    def __call__(self, row: Row) -> Row:
        task: FileTask = pickle.loads(row["task"])  # type: ignore[arg-type]
        try:
            decoded = _decoded(task, self.work)
            (out,) = _encode_each(self.models, self.work, [(task, decoded)])
        except Exception as exc:
            out = exc
        return {"i": row["i"], "out": _dump(out)}


def decode_task_args() -> dict[str, float]:
    """Remote args of each decode task; given as a function so Ray Data keeps decode a stage of its own."""
    return {"num_cpus": 1.0}


def ready(_: object = None) -> str:
    """The start-up probe: a worker of the cluster imports the pipeline (mmrec is installed there)."""
    import socket

    return socket.gethostname()


# ---------------------------------------------------------------- the engine, in the driver


class RayEngine:
    """Runs the mapper on a Ray cluster: joins ``address`` (``auto``, ``ray://host:10001``) or starts
    a local Ray for the run and stops it at :meth:`close`. A Ray already initialised in this
    process (tests, notebooks) is used as it is and left running."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        if not ray_available():
            raise EngineStartError("ray", f"Ray Data is not installed: {RAY_INSTALL_HINT}")
        if address and address.startswith("ray://") and not _client_available():
            raise EngineStartError(
                "ray", f"{address} is a Ray Client address, which needs pip install 'ray[client]' (grpcio)"
            )
        import ray

        self._ray = ray
        self.address = address
        self._owned = False
        self.pool: PoolSize | None = None
        if not ray.is_initialized():
            try:
                ray.init(
                    # "local" starts a Ray of our own: without it, ray.init joins whatever cluster
                    # /tmp/ray/ray_current_cluster names, even one whose head is gone (it then waits).
                    address=address or "local",
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as exc:  # no cluster at the address, a local start that failed
                hint = (
                    "; a cluster with token authentication (on by default in Ray 2.60) needs "
                    "RAY_AUTH_MODE=token and its token in ~/.ray/auth_token (or RAY_AUTH_TOKEN) here"
                    if address and address != "auto"
                    else ""
                )
                raise EngineStartError(
                    "ray", f"cannot start or join Ray ({address or 'local'}): {exc}{hint}"
                ) from exc
            self._owned = True
        # mmrec's own progress line reports the run; Ray Data's bars and notices would interleave.
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)

    @property
    def device(self) -> str:
        """Where batched encoders would run: on GPUs when the cluster has any (the driver may not)."""
        return "cuda" if self._ray.cluster_resources().get("GPU", 0) > 0 else "cpu"

    def describe(self) -> str:
        where = self.address or ("local Ray" if self._owned else "this process's Ray")
        pool = f", {self.pool.describe()}" if self.pool else ""
        return f"ray ({where}{pool})"

    def start(self, work: Work) -> None:
        """Size the actor pool from what is free and prove a cluster worker can import the pipeline."""
        ray = self._ray
        self.pool = size_actor_pool(ray.available_resources(), work.mode)
        probe = ray.remote(num_cpus=0)(ready)
        try:
            ray.get(probe.remote(), timeout=120)
        except Exception as exc:
            self.close()
            raise EngineStartError(
                "ray", f"a worker of the cluster could not run the pipeline: {exc}"
            ) from exc

    def map_files(
        self, work: Work, tasks: Iterable[FileTask]
    ) -> Iterator[tuple[FileTask, FileResult | BaseException]]:
        ray = self._ray
        from ray.data import ActorPoolStrategy

        todo = list(tasks)
        if not todo:
            return
        pool = self.pool or size_actor_pool(ray.available_resources(), work.mode)
        blocks = min(len(todo), max(8 * pool.actors, math.ceil(len(todo) / ROWS_PER_BLOCK)))
        rows = [{"i": i, "task": pickle.dumps(t)} for i, t in enumerate(todo)]
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        compute = ActorPoolStrategy(min_size=1, max_size=pool.actors)
        if work.mode is Mode.WHOLE_FILE:
            ds = ds.map(
                WholeFileEncoder,
                fn_constructor_kwargs={"work": work},
                compute=compute,
                num_cpus=pool.num_cpus,
            )
        else:
            # Separate decode tasks, never fused into the actors (Ray Data fuses a task map into
            # the actor map after it when their resources match, as 1-CPU CPU actors do).
            ds = ds.map(decode_row, fn_kwargs={"work": work}, num_cpus=1, ray_remote_args_fn=decode_task_args)
            device = "cuda" if pool.num_gpus else "cpu"
            ds = ds.map_batches(
                BatchEncoder,
                fn_constructor_kwargs={"work": work, "device": device, "threads": int(pool.num_cpus) or 1},
                batch_size=work.batch_size,
                compute=compute,
                num_cpus=pool.num_cpus,
                num_gpus=pool.num_gpus,
            )
        returned = 0
        try:
            for row in ds.iter_rows():
                out = pickle.loads(row["out"])
                returned += 1
                yield todo[int(row["i"])], out
        except ray.exceptions.RayError as exc:
            # Not a file's fault (those are rows): actors that cannot start, a lost node.
            if returned == 0:
                raise EngineStartError(
                    "ray",
                    f"the pipeline could not start (is mmrec installed on every node?): {_first_line(exc)}",
                ) from exc
            raise PoolBrokenError(f"the Ray pipeline stopped: {_first_line(exc)}") from exc

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
