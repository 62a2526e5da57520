"""``mmrec encode``: discover → plan → the runner (an engine maps files; this process fuses and
commits) → index.

Resumable by construction: every committed batch is one store transaction, and planning skips
what landed, so a run killed at any moment and started again encodes each file exactly once,
whichever engine ran before. Memory stays flat: the local engine keeps a bounded number of files
in flight, Ray Data streams its rows back, and this process holds at most one batch of them.
"""

from __future__ import annotations

import errno
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from encoders.media.errors import DecoderCrashedError, DecodeTimeoutError
from mmrec.store import EncodedItem, ItemRecord, LibraryStore
from pipelines.decode import spec_for_model_set
from pipelines.discover import SourceItem, discover
from pipelines.engines import Engine, FileTask, Mode, Work, open_engine
from pipelines.engines.base import PoolBrokenError, TaskTimeoutError, WorkerCrashedError
from pipelines.engines.local import DECODE_WORKER_PRELOAD, ENCODE_WORKER_PRELOAD, default_workers
from pipelines.errors import EncodeAbortedError, WorkerPoolBrokenError
from pipelines.fusion_select import library_fusion
from pipelines.item_encoder import EncodedVectors, EncodeInput, encode_batch
from pipelines.plan import Plan, ensure_hash, make_plan
from pipelines.progress import EncodeProgress
from pipelines.runner import Mapped, StageTimer, run_stages
from pipelines.thumbnails import as_stored

__all__ = [
    "DECODE_WORKER_PRELOAD",
    "ENCODE_WORKER_PRELOAD",
    "EncodeSummary",
    "default_workers",
    "is_environment_failure",
    "run_encode",
]

INDEX_EVERY_COMMITS = 20
DECODE_TIMEOUT_S = 300.0


@dataclass
class EncodeSummary:
    """What a run did; ``to_dict`` is what ``mmrec encode --json`` prints."""

    engine: str = ""  # where the mapper ran, e.g. "local (2 worker processes)"
    mode: str = ""  # "whole-file" or "decode-batched" ("" when no file needed encoding)
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
    fusion: dict[str, object] = field(default_factory=dict)  # what the fusion refresh after it did

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
    """State of one run and the runner's writer: fuses and commits, records failures."""

    def __init__(
        self,
        store: LibraryStore,
        plan: Plan,
        models: Any,
        fusion: Any,
        batch_size: int,
        fail_fast: bool,
        speech: bool,
        progress: EncodeProgress,
    ) -> None:
        self.store = store
        self.plan = plan
        self.batch_size = batch_size
        self.models = models
        self.fusion = fusion
        self.fail_fast = fail_fast
        self.speech = speech
        self.progress = progress
        self.timer = StageTimer()
        self.summary = EncodeSummary()
        self.reasons: Counter[str] = Counter()
        self.commits = 0
        self.index: Any = None
        self.by_path = {s.path: s for s in plan.todo if s.path}

    # ---------------------------------------------------------------- failures

    def record_failure(self, item: SourceItem, label: str, reason: str, transient: bool = False) -> None:
        """Record a failure (the run goes on unless --fail-fast).

        A ``transient`` failure (the environment's, not the file's) is reported but not recorded,
        so the next run tries the file again instead of skipping it as failed.
        """
        path = item.path or item.item_id
        if transient:
            self.summary.retry_next_run += 1
            reason = f"{reason} (not the file's fault: tried again on the next run)"
        else:
            self.store.record_failure(path, reason, item.size, item.mtime, ensure_hash(self.plan, item))
        self.summary.failed += 1
        self.reasons[label] += 1
        self.summary.failures.append((path, reason))
        self.progress.advance(failed=True)
        if self.fail_fast:
            raise EncodeAbortedError(path, reason)

    # ---------------------------------------------------------------- the runner's writer

    def fail(self, task: FileTask, exc: BaseException) -> None:
        """A file's error: a broken pool stops the run (no file is to blame), else the file fails."""
        if isinstance(exc, PoolBrokenError):
            raise WorkerPoolBrokenError(str(exc), self.summary.encoded)
        src = self.by_path[task.path]
        self.record_failure(src, _reason_label(exc), _reason_text(exc), transient=is_environment_failure(exc))

    def encode(self, batch: list[Mapped]) -> list[EncodedVectors]:
        """Encode decoded files in this process, batched across files (decode-batched, local)."""
        inputs = [EncodeInput(meta=t.meta, media=r.media) for t, r in batch]
        return encode_batch(inputs, self.models, speech=self.speech)

    def write(self, batch: list[Mapped]) -> None:
        rows = []
        for task, result in batch:
            assert result.encoded is not None
            rows.append((self.by_path[task.path], result.media, result.encoded, result.thumbnail))
        self.commit(rows)

    def tick(self) -> None:
        self.progress.describe(self.summary.failed, self.timer.describe())

    # ---------------------------------------------------------------- fuse + write

    def commit(self, batch: list[tuple[SourceItem, Any | None, EncodedVectors, Any | None]]) -> None:
        """Fuse and commit encoded items as one store transaction; items with no vector fail."""
        keep: list[tuple[SourceItem, Any | None, EncodedVectors, Any | None]] = []
        for src, media, enc, thumb in batch:
            if enc.vectors:
                keep.append((src, media, enc, thumb))
            else:
                notes = "; ".join(str(w) for w in (getattr(media, "warnings", None) or []))
                reason = "no modality could be encoded (no frames, audio or text)" + (
                    f": {notes}" if notes else ""
                )
                self.record_failure(src, "NothingToEncode", reason)
        if not keep:
            return
        with self.timer.stage("fuse"):
            fused, weights = self.fusion.fuse([e.vectors for _, _, e, _ in keep])
        items = [
            EncodedItem(
                record=self.record(s, m, e),
                vectors=e.vectors,
                fused=fused[k],
                weights=weights[k],
                thumbnail=as_stored(thumb),
            )
            for k, (s, m, e, thumb) in enumerate(keep)
        ]
        with self.timer.stage("write"):
            self.store.commit_items(items, self.fusion.version)
        self.summary.encoded += len(items)
        self.commits += 1
        for _ in items:
            self.progress.advance(failed=False)
        if self.index is not None and self.commits % INDEX_EVERY_COMMITS == 0:
            self.sync_index()

    def record(self, src: SourceItem, media: Any | None, enc: EncodedVectors) -> ItemRecord:
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
            content_hash=ensure_hash(self.plan, src),
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

    def run(self, engine: Engine | None, work: Work | None) -> None:
        """Rejected files, then text-only items (encoded here), then the files through the runner."""
        for item in self.plan.reject:
            reason = item.reject_reason or "rejected"
            self.record_failure(item, reason, reason)
        text = list(self.plan.text)
        for start in range(0, len(text), self.batch_size):
            chunk = text[start : start + self.batch_size]
            with self.timer.stage("encode"):
                encoded = encode_batch([EncodeInput(meta=s.meta) for s in chunk], self.models, self.speech)
            self.commit([(s, None, e, None) for s, e in zip(chunk, encoded, strict=True)])
        if engine is None or work is None:
            return
        tasks = (FileTask(path=s.path, meta=s.meta) for s in self.plan.todo if s.path)
        try:
            run_stages(engine, work, tasks, self, self.timer)
        except PoolBrokenError as exc:  # an engine that broke mid-stream (Ray: a lost node)
            raise WorkerPoolBrokenError(str(exc), self.summary.encoded) from exc


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
    engine: str | Engine | None = "local",
    mode: str | Mode | None = None,
    address: str | None = None,
    speech: bool = True,
    frame_count: int = 16,
    decode_timeout_s: float = DECODE_TIMEOUT_S,
    update_index: bool = True,
    wait: bool = False,
) -> EncodeSummary:
    """Encode every new or changed media file under ``media_dir`` into the library at ``library_path``.

    ``models`` is a profile name / config path or an already loaded ``ModelSet``. ``engine`` is where
    the files are mapped: ``"local"`` (a process pool of ``workers``; ``workers=0`` maps in this
    process, without isolation), ``"ray"`` (Ray Data; ``address`` joins a cluster, else a local Ray
    is started and stopped), or an :class:`~pipelines.engines.Engine` instance (the caller closes
    it). ``mode`` (``"whole-file"``/``"decode-batched"``) defaults to what the device calls for
    (:func:`pipelines.engines.choose_mode`). Whatever the engine, this process writes every item
    through ``LibraryStore.commit_items``. One encode runs per library at a time: a second one raises
    ``LibraryBusyError`` naming the first, or with ``wait=True`` queues behind it.
    """
    t0 = time.perf_counter()
    if isinstance(models, str | Path):
        from encoders.registry import load_models

        models = load_models(str(models), device=device)
    opts = _Options(
        workers=workers,
        batch_size=max(1, batch_size),
        device=device,
        fail_fast=fail_fast,
        retry_failed=retry_failed,
        progress=progress,
        engine=engine if engine is not None else "local",
        mode=mode,
        address=address,
        speech=speech,
        frame_count=frame_count,
        decode_timeout_s=decode_timeout_s,
        update_index=update_index,
    )
    store = LibraryStore.open(library_path)
    try:
        with store.exclusive_run("mmrec encode", wait=wait):
            return _run_locked(store, media_dir, models, metadata, opts, t0)
    finally:
        store.close()


@dataclass(frozen=True)
class _Options:
    """``run_encode``'s settings, passed on as one value."""

    workers: int | None
    batch_size: int
    device: str
    fail_fast: bool
    retry_failed: bool
    progress: bool
    engine: str | Engine
    mode: str | Mode | None
    address: str | None
    speech: bool
    frame_count: int
    decode_timeout_s: float
    update_index: bool


def _start_engine(opts: _Options, models: Any) -> tuple[Engine, Work, bool]:
    """The engine, the work it runs and whether this run owns it, proven able to run before
    anything is recorded (a pool that cannot start fails once, not on every file)."""
    model_device = str(getattr(models, "device", opts.device))
    if isinstance(opts.engine, str):
        engine, mode = open_engine(
            opts.engine,
            models_device=model_device,
            mode=opts.mode,
            workers=opts.workers,
            batch_size=opts.batch_size,
            address=opts.address,
            models=models,
        )
        owned = True
    else:
        from pipelines.engines import choose_mode

        engine, mode, owned = opts.engine, choose_mode(model_device, opts.mode), False
    try:
        # Whole-file workers build their spec from their own models: reading rates here would
        # load the sound and speech models into this process for nothing.
        spec = None if mode is Mode.WHOLE_FILE else spec_for_model_set(models, opts.speech, opts.frame_count)
        work = Work(
            mode=mode,
            models=str(models.profile),
            device=model_device,
            spec=spec,
            frame_count=opts.frame_count,
            speech=opts.speech,
            timeout_s=opts.decode_timeout_s,
            batch_size=opts.batch_size,
        )
        engine.start(work)
    except BaseException:
        if owned:
            engine.close()
        raise
    return engine, work, owned


def _announce(summary: EncodeSummary, work: Work, asked: bool) -> None:
    """Say which mode runs where, and why (stderr: stdout may carry --json)."""
    what = (
        "workers decode and encode whole files"
        if work.mode is Mode.WHOLE_FILE
        else "workers decode, encoders run batched across files"
    )
    why = "as asked" if asked else f"chosen for {'a GPU' if work.device.startswith('cuda') else 'the CPU'}"
    sys.stderr.write(f"mmrec encode: {summary.mode} mode ({what}; {why}) on {summary.engine}\n")


def _run_locked(
    store: LibraryStore,
    media_dir: str | Path,
    models: Any,
    metadata: str | Path | None,
    opts: _Options,
    t0: float,
) -> EncodeSummary:
    """``run_encode`` once this process holds the library: plan, start workers, then write."""
    engine: Engine | None = None
    owned = False
    try:
        store.check_models(models.describe())
        if not store.manifest().get("models_profile"):  # later queries load the same models
            store.update_manifest(models_profile=str(models.profile))
        fusion = library_fusion(store, models, opts.device)
        found = discover(media_dir, metadata)
        # What registering the folder will give; it is registered once the workers have started.
        source = store.register_source(found.root, commit=False)
        plan = make_plan(found, store, retry_failed=opts.retry_failed, source=source)
        work: Work | None = None
        if plan.todo:
            engine, work, owned = _start_engine(opts, models)
        total = len(plan.todo) + len(plan.text) + len(plan.reject)
        with EncodeProgress(total, enabled=opts.progress) as bar:
            job = _Job(store, plan, models, fusion, opts.batch_size, opts.fail_fast, opts.speech, bar)
            if engine is not None and work is not None:
                job.summary.engine, job.summary.mode = engine.describe(), work.mode.value
                if opts.progress:
                    _announce(job.summary, work, opts.mode is not None)
            with job.timer.stage("write"):
                store.register_source(found.root)
                if plan.delete_ids:
                    job.summary.deleted = len(store.delete_items(plan.delete_ids))
                if plan.forget_paths:
                    store.forget_failures(plan.forget_paths)
            job.index = _open_index(store) if opts.update_index else None
            if opts.update_index and job.index is None:
                job.summary.index = "unavailable (mmrec.index.library_index not importable)"
            try:
                job.run(engine, work)
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
        if owned and engine is not None:
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
        engine=opts.get("--engine") or "local",
        mode=opts.get("--mode"),
        address=opts.get("--address"),
    )


if __name__ == "__main__":
    raise SystemExit(main())
