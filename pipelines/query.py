"""Encode one media file that is not in the library, for ``mmrec similar PATH``.

Same code path as the batch encoder (decode stage, :func:`encode_batch`, the library's fusion),
with a batch of one, so a file gives the same vector whether it was encoded in a batch or alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from encoders.media.guard import run_guarded
from pipelines.decode import DecodeTask, decode_task, spec_for_model_set
from pipelines.discover import ItemMeta
from pipelines.errors import NothingEncodedError
from pipelines.item_encoder import EncodeInput, encode_batch

QUERY_TIMEOUT_S = 300.0


def encode_file_for_query(
    path: str | Path,
    models: Any,
    fusion: Any,
    speech: bool = True,
    frame_count: int = 16,
    timeout_s: float = QUERY_TIMEOUT_S,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """(fused (D,) vector, per-modality (n, d) vectors, metadata such as visual tags and transcript).

    Decoding runs in a guarded child process, so a hanging or crashing decoder raises a typed
    ``encoders.media`` error instead of taking the caller down.
    """
    task = DecodeTask(path=str(Path(path).resolve()), spec=spec_for_model_set(models, speech, frame_count))
    decoded = run_guarded(decode_task, task, timeout_s=timeout_s)
    (enc,) = encode_batch([EncodeInput(meta=ItemMeta(), media=decoded.media)], models, speech=speech)
    if not enc.vectors:
        raise NothingEncodedError(str(path), "no modality could be encoded (no frames, audio or speech)")
    fused, weights = fusion.fuse([enc.vectors])
    metadata = dict(enc.metadata)
    metadata["weights"] = weights[0]
    metadata["kind"] = getattr(decoded.media.info, "kind", None)
    metadata["duration_s"] = getattr(decoded.media.info, "duration_s", None)
    return fused[0], enc.vectors, metadata
