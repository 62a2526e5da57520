"""Thumbnail types shared by the store's readers, the backfill pipeline and the API."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Thumbnail:
    """An item's stored preview picture; ``etag`` is a hash of the bytes (quote it for an HTTP ETag)."""

    data: bytes
    mime: str
    etag: str

    @classmethod
    def of(cls, data: bytes, mime: str) -> Thumbnail:
        """Wrap stored bytes, deriving the ETag from the content (same picture, same tag)."""
        return cls(data=data, mime=mime, etag=hashlib.blake2b(data, digest_size=16).hexdigest())


@dataclass(frozen=True)
class BackfillStep:
    """One item finished by a thumbnail backfill: what a progress display shows and a summary collects."""

    item_id: str
    path: str
    ok: bool
    reason: str | None  # why no thumbnail was made (when ok is False)
    done: int
    total: int  # items this run works on
    already: int  # items skipped because they already have a thumbnail
