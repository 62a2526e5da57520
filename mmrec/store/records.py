"""What the store holds per item: the catalog record and the encoded vectors that go with it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mmrec.errors import InvalidInputError

KINDS = ("video", "audio", "image", "text")
STATUSES = ("ok", "failed")
FUSED = "fused"
MAX_THUMBNAIL_BYTES = 2 << 20  # a preview, not a copy of the media


@dataclass
class ItemRecord:
    """One catalog row: identity, file state for incremental runs, and user-facing text."""

    item_id: str
    path: str | None
    kind: str
    content_hash: str | None = None
    size: int | None = None
    mtime: float | None = None
    duration_s: float | None = None
    title: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    key: int | None = None


@dataclass
class EncodedItem:
    """A record plus everything the encoders and fusion produced for it, committed as one unit."""

    record: ItemRecord
    vectors: dict[str, np.ndarray]
    fused: np.ndarray
    weights: dict[str, float]
    thumbnail: tuple[bytes, str] | None = None  # (image bytes, MIME type), stored in the same commit


def check_record(rec: ItemRecord) -> None:
    """Refuse records that would poison the catalog, naming the item and field."""
    source = rec.item_id or (rec.path or "<item>")
    if not isinstance(rec.item_id, str) or not rec.item_id.strip():
        raise InvalidInputError(source, "item_id", "must be a non-empty string")
    if rec.kind not in KINDS:
        raise InvalidInputError(source, "kind", f"{rec.kind!r} is not one of {', '.join(KINDS)}")
    if rec.status not in STATUSES:
        raise InvalidInputError(source, "status", f"{rec.status!r} is not one of {', '.join(STATUSES)}")
    if not isinstance(rec.tags, list) or not all(isinstance(t, str) for t in rec.tags):
        raise InvalidInputError(source, "tags", "must be a list of strings")
    if not isinstance(rec.metadata, dict):
        raise InvalidInputError(source, "metadata", "must be a dict")


def check_thumbnail(source: str, value: tuple[bytes, str]) -> tuple[bytes, str]:
    """A thumbnail as (bytes, "image/..." MIME type), bounded in size."""
    try:
        data, mime = value
    except (TypeError, ValueError):
        raise InvalidInputError(source, "thumbnail", "must be a (bytes, mime type) pair") from None
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise InvalidInputError(source, "thumbnail", "the image data must be non-empty bytes")
    if len(data) > MAX_THUMBNAIL_BYTES:
        raise InvalidInputError(
            source, "thumbnail", f"{len(data)} bytes is more than the {MAX_THUMBNAIL_BYTES} bytes allowed"
        )
    if not isinstance(mime, str) or not mime.startswith("image/"):
        raise InvalidInputError(source, "thumbnail", f"MIME type {mime!r} is not an image/... type")
    return bytes(data), mime


def as_rows(source: str, modality: str, value: np.ndarray) -> np.ndarray:
    """A modality's vectors as a C-contiguous (n, d) float32 array."""
    if modality == FUSED:
        raise InvalidInputError(
            source, f"vectors[{modality}]", "'fused' is reserved; pass it as EncodedItem.fused"
        )
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(
            source, f"vectors[{modality}]", f"expected an (n, d) array, got shape {arr.shape}"
        )
    return np.ascontiguousarray(arr)  # finiteness is checked per batch (one pass) by the store


def as_fused(source: str, value: np.ndarray | None) -> np.ndarray | None:
    """The fused vector as a (1, D) float32 row, or None when the item has none (failed items)."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32)
    if arr.size == 0:
        return None
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise InvalidInputError(source, "fused", f"expected a (D,) vector, got shape {arr.shape}")
    return np.ascontiguousarray(arr[None, :])


def check_weights(source: str, weights: dict[str, float]) -> dict[str, float]:
    """Attention weights as plain floats (they are stored as JSON)."""
    if not isinstance(weights, dict):
        raise InvalidInputError(source, "weights", "must be a dict of modality -> weight")
    out: dict[str, float] = {}
    for name, w in weights.items():
        try:
            value = float(w)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(source, f"weights[{name}]", f"{w!r} is not a number") from exc
        if not math.isfinite(value):
            raise InvalidInputError(source, f"weights[{name}]", "is NaN or infinite")
        out[str(name)] = value
    return out
