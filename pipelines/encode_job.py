"""``mmrec encode``: discover → plan → decode (workers) → encode (batches) → fuse → commit → index.

Resumable by construction: every committed batch is one store transaction, and planning skips
what landed, so a run killed at any moment and started again encodes each file exactly once.
Memory stays flat: the engine keeps a bounded number of decodes in flight and the main process
holds at most one batch of decoded media.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from encoders.media.errors import DecoderCrashedError, DecodeTimeoutError
from encoders.media.thumbnail import ThumbnailImage
from mmrec.store import EncodedItem, ItemRecord, LibraryStore
from pipelines.decode import Decoded, DecodeTask, decode_task, spec_for_model_set
from pipelines.discover import SourceItem, discover
from pipelines.encode_worker import EncodeTask, ReadyCheck, WorkerEncoded, decode_encode_task, worker_ready
from pipelines.errors import EncodeAbortedError, WorkerPoolBrokenError, WorkerStartError
from pipelines.fusion_select import library_fusion
from pipelines.item_encoder import EncodedVectors, EncodeInput, encode_batch
from pipelines.plan import Plan, ensure_hash, make_plan
from pipelines.progress import EncodeProgress
from pipelines.runner import (
    Engine,
    LocalEngine,
    PoolBrokenError,
    SerialEngine,
    StageTimer,
    TaskTimeoutError,
    WorkerCrashedError,
)
from pipelines.runner import worker_ready as decode_worker_ready
from pipelines.thumbnails import as_stored

INDEX_EVERY_COMMITS = 20
# Imported once by the fork server, so workers (and their replacements) start without re-importing.
DECODE_WORKER_PRELOAD = ("numpy", "av", "PIL.Image", "pipelines.decode")
ENCODE_WORKER_PRELOAD = (*DECODE_WORKER_PRELOAD, "torch", "onnxruntime", "pipelines.encode_worker")
DECODE_TIMEOUT_S = 300.0
STARTUP_TIMEOUT_S = 300.0  # the start-up probe: a worker imports torch and loads its models first


@dataclass
class EncodeSummary:
    """What a run did; ``to_dict`` is what ``mmrec encode --json`` prints."""

    encoded: int = 0
    skipped_unchanged: int = 0
    skipped_failed: int = 0
    failed: int = 0
    deleted: int = 0
    retry_next_run: int = 0  # failures of the environment (timeouts, killed workers): not recorded
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (alias path, id of the item it names)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    stages_s: dict[str, float] = field(default_factory=dict)
    index: str = "not run"

    @property
    def files_per_s(self) -> float:
        done = self.encoded + self.failed
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failures"] = [{"path": p, "reason": r} for p, r in self.failures]
        out["aliases"] = [{"path": p, "item_id": i} for p, i in self.aliases]
        out["files_per_s"] = round(self.files_per_s, 3)
        out["elapsed_s"] = round(self.elapsed_s, 3)
        return out


def default_workers(device: str = "cpu") -> int:
    """Decode processes to start when the user does not say.

    With a GPU the models are fast and decoding is the bottleneck: every core but one decodes
    while the main process batches the models on the GPU. On CPU every core runs a worker that
    decodes and encodes whole files with one torch thread (``encode_worker``).
    """
    cores = os.cpu_count() or 2
    if device.startswith("cuda"):
        return max(1, cores - 1)
    return cores


def _reason_label(exc: BaseException) -> str:
    return type(exc).__name__


def _reason_text(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else (str(exc) or type(exc).__name__)


_OOM_KILL = -9  # the kernel's OOM killer sends SIGKILL


def is_environment_failure(exc: BaseException) -> bool:
    """Whether a failure came from the machine rather than the file, so the next run tries again.

    Timeouts (a loaded or swapping machine), workers killed by SIGKILL (the OOM killer), memory
    errors and missing models or libraries say nothing about the file; a decoder that raised a
    media error, or crashed with a segfault or an abort, does, and stays recorded.
    """
    if isinstance(exc, TaskTimeoutError | DecodeTimeoutError | MemoryError | ImportError | PoolBrokenError):
        return True
    if isinstance(exc, WorkerCrashedError):
        return exc.exitcode in (None, _OOM_KILL)
    if isinstance(exc, DecoderCrashedError):
        return "SIGKILL" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOMEM, errno.ENOSPC, errno.EMFILE, errno.ENFILE)


class _Job:
    """State of one run; methods are the stages, ``run`` wires them together."""

    def __init__(
        self,
        store: LibraryStore,
        models: Any,
        fusion: Any,
        batch_size: int,
        fail_fast: bool,
        speech: bool,
        progress: EncodeProgress,
    ) -> None:
        self.store = store
        self.models = models
        self.fusion = fusion
        self.batch_size = max(1, batch_size)
        self.fail_fast = fail_fast
        self.speech = speech
        self.progress = progress
        self.timer = StageTimer()
        self.summary = EncodeSummary()
        self.reasons: Counter[str] = Counter()
        self.commits = 0
        self.index: Any = None
        # Set to the model profile when workers encode whole files (CPU mode), else None.
        self.worker_models: str | None = None
        self.frame_count = 16
        # item_id -> thumbnail drawn by a worker, held until the item is committed (or fails)
        self.thumbnails: dict[str, ThumbnailImage] = {}

    # ---------------------------------------------------------------- failures

    def fail(self, plan: Plan, item: SourceItem, label: str, reason: str, transient: bool = False) -> None:
        """Record a failure (the run goes on unless --fail-fast).

        A ``transient`` failure (the environment's, not the file's) is reported but not recorded,
        so the next run tries the file again instead of skipping it as failed.
        """
        path = item.path or item.item_id
        self.thumbnails.pop(item.item_id, None)
        if transient:
            self.summary.retry_next_run += 1
            reason = f"{reason} (not the file's fault: tried again on the next run)"
        else:
            self.store.record_failure(path, reason, item.size, item.mtime, ensure_hash(plan, item))
        self.summary.failed += 1
        self.reasons[label] += 1
        self.summary.failures.append((path, reason))
        self.progress.advance(failed=True)
        if self.fail_fast:
            raise EncodeAbortedError(path, reason)

    def failed_task(self, plan: Plan, src: SourceItem, exc: BaseException) -> None:
        """A task's error: a broken pool stops the run (no file is to blame), else the file fails."""
        if isinstance(exc, PoolBrokenError):
            raise WorkerPoolBrokenError(str(exc), self.summary.encoded)
        self.fail(plan, src, _reason_label(exc), _reason_text(exc), transient=is_environment_failure(exc))

    # ---------------------------------------------------------------- encode + write

    def flush(self, plan: Plan, batch: list[tuple[SourceItem, Any | None]]) -> None:
        """Encode (in this process, batched across items), fuse and commit one batch."""
        if not batch:
            return
        with self.timer.stage("encode"):
            encoded = encode_batch(
                [EncodeInput(meta=s.meta, media=m) for s, m in batch], self.models, speech=self.speech
            )
        self.commit(plan, [(s, m, e) for (s, m), e in zip(batch, encoded, strict=True)])

    def commit(self, plan: Plan, batch: list[tuple[SourceItem, Any | None, EncodedVectors]]) -> None:
        """Fuse and commit encoded items as one store transaction; items with no vector fail."""
        if not batch:
            return
        keep: list[tuple[SourceItem, Any | None, EncodedVectors]] = []
        for src, media, enc in batch:
            if enc.vectors:
                keep.append((src, media, enc))
            else:
                notes = "; ".join(str(w) for w in (getattr(media, "warnings", None) or []))
                reason = "no modality could be encoded (no frames, audio or text)" + (
                    f": {notes}" if notes else ""
                )
                self.fail(plan, src, "NothingToEncode", reason)
        if not keep:
            return
        with self.timer.stage("fuse"):
            fused, weights = self.fusion.fuse([e.vectors for _, _, e in keep])
        items = [
            EncodedItem(
                record=self.record(plan, s, m, e),
                vectors=e.vectors,
                fused=fused[k],
                weights=weights[k],
                thumbnail=as_stored(self.thumbnails.pop(s.item_id, None)),
            )
            for k, (s, m, e) in enumerate(keep)
        ]
        with self.timer.stage("write"):
            self.store.commit_items(items, self.fusion.version)
        self.summary.encoded += len(items)
        self.commits += 1
        for _ in items:
            self.progress.advance(failed=False)
        if self.index is not None and self.commits % INDEX_EVERY_COMMITS == 0:
            self.sync_index()

    def keep_thumbnail(self, src: SourceItem, thumb: ThumbnailImage | None, seconds: float) -> None:
        """Hold a worker's thumbnail until its item is committed with it (in the same transaction)."""
        self.timer.add("thumbnail", seconds)
        if thumb is not None:
            self.thumbnails[src.item_id] = thumb

    def record(self, plan: Plan, src: SourceItem, media: Any | None, enc: EncodedVectors) -> ItemRecord:
        info = getattr(media, "info", None)
        metadata: dict[str, Any] = dict(src.meta.extra)
        metadata.update({k: v for k, v in enc.metadata.items() if k != "title"})
        if info is not None:
            metadata["probe"] = _probe_summary(info)
        warnings = list(getattr(media, "warnings", ()) or ())
        if warnings:
            metadata["warnings"] = [str(w) for w in warnings]
        return ItemRecord(
            item_id=src.item_id,
            path=src.path,
            kind=getattr(info, "kind", None) or src.kind or "text",
            content_hash=ensure_hash(plan, src),
            size=src.size,
            mtime=src.mtime,
            duration_s=getattr(info, "duration_s", None),
            title=src.meta.title,
            description=src.meta.description,
            tags=list(src.meta.tags),
            metadata=metadata,
        )

    # ---------------------------------------------------------------- index

    def sync_index(self) -> None:
        """Bring the FAISS index up to the store (LibraryIndex.sync saves atomically when it changed)."""
        with self.timer.stage("index"):
            self.index.sync()

    # ---------------------------------------------------------------- the run

    def run(self, plan: Plan, engine: Engine, spec: Any, timeout_s: float) -> None:
        for item in plan.reject:
            self.fail(plan, item, item.reject_reason or "rejected", item.reject_reason or "rejected")
        text = list(plan.text)
        for start in range(0, len(text), self.batch_size):
            self.flush(plan, [(s, None) for s in text[start : start + self.batch_size]])
        if self.worker_models is not None:
            self.run_in_workers(plan, engine, spec, timeout_s)
            return
        by_path = {s.path: s for s in plan.todo}
        tasks = (DecodeTask(path=s.path, spec=spec) for s in plan.todo if s.path)
        batch: list[tuple[SourceItem, Any | None]] = []
        wait_t0 = time.perf_counter()
        for task, result in engine.map_decode(decode_task, tasks, timeout_s):
            self.timer.add("wait_decode", time.perf_counter() - wait_t0)
            src = by_path[task.path]
            if isinstance(result, BaseException):
                self.failed_task(plan, src, result)
            else:
                assert isinstance(result, Decoded)
                self.timer.add("decode", result.seconds)
                self.keep_thumbnail(src, result.thumbnail, result.thumbnail_s)
                batch.append((src, result.media))
                if len(batch) >= self.batch_size:
                    self.flush(plan, batch)
                    batch = []
            self.progress.describe(self.summary.failed, self.timer.describe())
            wait_t0 = time.perf_counter()
        self.flush(plan, batch)

    def run_in_workers(self, plan: Plan, engine: Engine, spec: Any, timeout_s: float) -> None:
        """CPU mode: workers decode and encode whole files; this process fuses and commits."""
        assert self.worker_models is not None
        by_path = {s.path: s for s in plan.todo}
        tasks = (
            EncodeTask(
                path=s.path,
                frame_count=self.frame_count,
                meta=s.meta,
                models=self.worker_models,
                speech=self.speech,
            )
            for s in plan.todo
            if s.path
        )
        batch: list[tuple[SourceItem, Any | None, EncodedVectors]] = []
        wait_t0 = time.perf_counter()
        for task, result in engine.map_decode(decode_encode_task, tasks, timeout_s):
            self.timer.add("wait_workers", time.perf_counter() - wait_t0)
            src = by_path[task.path]
            if isinstance(result, BaseException):
                self.failed_task(plan, src, result)
            else:
                assert isinstance(result, WorkerEncoded)
                self.timer.add("decode", result.decode_s)
                self.timer.add("encode", result.encode_s)
                self.keep_thumbnail(src, result.thumbnail, result.thumbnail_s)
                batch.append((src, result.media, result.encoded))
                if len(batch) >= self.batch_size:
                    self.commit(plan, batch)
                    batch = []
            self.progress.describe(self.summary.failed, self.timer.describe())
            wait_t0 = time.perf_counter()
        self.commit(plan, batch)


def _probe_summary(info: Any) -> dict[str, Any]:
    keys = ("container", "duration_s", "width", "height", "fps", "rotation", "sample_rate", "channels")
    out = {k: getattr(info, k, None) for k in keys if getattr(info, k, None) is not None}
    out["has_audio"] = bool(getattr(info, "has_audio", False))
    out["has_video"] = bool(getattr(info, "has_video", False))
    out["codecs"] = list(getattr(info, "codecs", ()) or ())
    return out


def _open_index(store: LibraryStore) -> Any | None:
    """The library's FAISS index, or None while ``mmrec.index`` is not available in this checkout."""
    try:
        from mmrec.index.library_index import LibraryIndex
    except ImportError:
        return None
    return LibraryIndex.open(store)


def run_encode(
    media_dir: str | Path,
    library_path: str | Path,
    models: Any = "bundled",
    metadata: str | Path | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    fail_fast: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    *,
    engine: Engine | None = None,
    speech: bool = True,
    frame_count: int = 16,
    decode_timeout_s: float = DECODE_TIMEOUT_S,
    update_index: bool = True,
    wait: bool = False,
) -> EncodeSummary:
    """Encode every new or changed media file under ``media_dir`` into the library at ``library_path``.

    ``models`` is a profile name / config path or an already loaded ``ModelSet``; ``workers=0`` decodes
    in-process (no isolation); ``engine`` overrides the decode engine (e.g. a Ray engine). One encode
    runs per library at a time: a second one raises ``LibraryBusyError`` naming the first, or with
    ``wait=True`` queues behind it.
    """
    t0 = time.perf_counter()
    if isinstance(models, str | Path):
        from encoders.registry import load_models

        models = load_models(str(models), device=device)
    store = LibraryStore.open(library_path)
    try:
        with store.exclusive_run("mmrec encode", wait=wait):
            return _run_locked(
                store,
                media_dir,
                models,
                metadata,
                workers,
                batch_size,
                device,
                fail_fast,
                retry_failed,
                progress,
                engine,
                speech,
                frame_count,
                decode_timeout_s,
                update_index,
                t0,
            )
    finally:
        store.close()


def _start_engine(
    engine: Engine | None,
    n: int,
    in_workers: bool,
    batch_size: int,
    models: Any,
    speech: bool,
    frame_count: int,
) -> Engine:
    """The decode engine, proven able to run a task before anything is recorded.

    A pool whose workers cannot start (a script without a ``__main__`` guard, no memory for a
    process) or cannot load their models would otherwise fail every file with the same error.
    """
    if engine is None:
        try:
            engine = (
                SerialEngine()
                if n == 0
                else LocalEngine(
                    n,
                    max_in_flight=batch_size + 2 * n,
                    max_tasks=500 if in_workers else 50,
                    preload=ENCODE_WORKER_PRELOAD if in_workers else DECODE_WORKER_PRELOAD,
                )
            )
        except (OSError, RuntimeError) as exc:
            raise WorkerStartError(f"{type(exc).__name__}: {exc}") from exc
    if in_workers:
        probe = engine.map_decode(
            worker_ready, [ReadyCheck(str(models.profile), frame_count, speech)], STARTUP_TIMEOUT_S
        )
    else:
        probe = engine.map_decode(decode_worker_ready, [None], STARTUP_TIMEOUT_S)
    for _, result in probe:
        if isinstance(result, BaseException):
            engine.close()
            raise WorkerStartError(f"{type(result).__name__}: {_reason_text(result)}") from result
    return engine


def _run_locked(
    store: LibraryStore,
    media_dir: str | Path,
    models: Any,
    metadata: str | Path | None,
    workers: int | None,
    batch_size: int,
    device: str,
    fail_fast: bool,
    retry_failed: bool,
    progress: bool,
    engine: Engine | None,
    speech: bool,
    frame_count: int,
    decode_timeout_s: float,
    update_index: bool,
    t0: float,
) -> EncodeSummary:
    """``run_encode`` once this process holds the library: plan, start workers, then write."""
    own_engine = engine is None
    try:
        store.check_models(models.describe())
        if not store.manifest().get("models_profile"):  # later queries load the same models
            store.update_manifest(models_profile=str(models.profile))
        fusion = library_fusion(store, models, device)
        found = discover(media_dir, metadata)
        # What registering the folder will give; it is registered once the workers have started.
        source = store.register_source(found.root, commit=False)
        plan = make_plan(found, store, retry_failed=retry_failed, source=source)
        model_device = str(getattr(models, "device", device))
        n = default_workers(model_device) if workers is None else workers
        # On CPU, workers encode whole files themselves (encode_worker); on GPU they only decode.
        in_workers = own_engine and n > 0 and not model_device.startswith("cuda")
        # Workers build their spec from their own models: reading rates here would load the sound
        # and speech models into this process for nothing.
        spec = spec_for_model_set(models, speech, frame_count) if plan.todo and not in_workers else None
        if plan.todo:
            engine = _start_engine(engine, n, in_workers, batch_size, models, speech, frame_count)
        total = len(plan.todo) + len(plan.text) + len(plan.reject)
        with EncodeProgress(total, enabled=progress) as bar:
            job = _Job(store, models, fusion, batch_size, fail_fast, speech, bar)
            job.worker_models = str(models.profile) if in_workers else None
            job.frame_count = frame_count
            with job.timer.stage("write"):
                store.register_source(found.root)
                if plan.delete_ids:
                    job.summary.deleted = len(store.delete_items(plan.delete_ids))
                if plan.forget_paths:
                    store.forget_failures(plan.forget_paths)
            job.index = _open_index(store) if update_index else None
            if update_index and job.index is None:
                job.summary.index = "unavailable (mmrec.index.library_index not importable)"
            try:
                job.run(plan, engine or SerialEngine(), spec, decode_timeout_s)
            finally:
                if job.index is not None:
                    job.sync_index()
                    job.summary.index = "synced"
        summary = job.summary
        summary.skipped_unchanged = plan.unchanged
        summary.skipped_failed = plan.skipped_failed
        summary.aliases = [(a.path, a.target.item_id) for a in plan.aliases]
        summary.failure_reasons = dict(job.reasons)
        summary.stages_s = job.timer.to_dict()
        summary.elapsed_s = time.perf_counter() - t0
        return summary
    finally:
        if own_engine and engine is not None:
            engine.close()


def _iter_args(argv: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    it = iter(argv)
    for a in it:
        if a.startswith("--") and a not in (
            "--fail-fast",
            "--retry-failed",
            "--no-speech",
            "--quiet",
            "--wait",
        ):
            yield a, next(it, None)
        else:
            yield a, None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pipelines.encode_job MEDIA_DIR LIBRARY [--workers N] [--batch-size N] ...``.

    A dependency-free entry point (no click, no front layer) for child processes such as
    ``scripts/bench_resume.py``; users call ``mmrec encode``.
    """
    import json

    args = list(sys.argv[1:] if argv is None else argv)
    positional = [a for a, v in _iter_args(args) if not a.startswith("--") and v is None]
    opts = {a: v for a, v in _iter_args(args) if a.startswith("--")}
    if len(positional) != 2:
        sys.stderr.write("usage: python -m pipelines.encode_job MEDIA_DIR LIBRARY [options]\n")
        return 2
    from mmrec.errors import MmrecError

    try:
        summary = _main_run(positional, opts)
    except MmrecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(summary.to_dict()) + "\n")
    return 0


def _main_run(positional: list[str], opts: dict[str, str | None]) -> EncodeSummary:
    return run_encode(
        positional[0],
        positional[1],
        models=opts.get("--models") or "bundled",
        metadata=opts.get("--metadata"),
        workers=int(opts["--workers"]) if opts.get("--workers") else None,
        batch_size=int(opts.get("--batch-size") or 32),
        device=opts.get("--device") or "auto",
        fail_fast="--fail-fast" in opts,
        retry_failed="--retry-failed" in opts,
        progress="--quiet" not in opts,
        speech="--no-speech" not in opts,
        frame_count=int(opts.get("--frames") or 16),
        wait="--wait" in opts,
    )


if __name__ == "__main__":
    raise SystemExit(main())
