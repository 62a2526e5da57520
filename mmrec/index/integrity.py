"""Checksums of index files that stay affordable when a file is many gigabytes.

Each file is hashed once, at save, as SHA-256 of every ``BLOCK`` bytes (the last block may be shorter).
The record (size and block hashes) goes into the version's ``meta.json``. Published versions are never
modified, so every later read must find the same bytes.

* ``verify="sampled"`` (every load): the size, the first and last blocks and ``SAMPLED_BLOCKS`` blocks
  drawn at random on each load. A file of at most ``FULL_BELOW`` bytes is always verified whole, so an
  ordinary index (and every test library) is checked completely on each load, as before. A 13 GB shard
  costs 6 blocks = 48 MiB of reading instead of 13 GB; damage outside the drawn blocks is found with a
  probability that grows with every load, and always by ``mmrec check``.
* ``verify="full"`` (``mmrec check``): every block.
* ``verify="none"``: the size only (benchmarks that just built the file).

Size+mtime was rejected as a shortcut: copying a library (``cp -r``, ``rsync`` without ``-t``) changes
every mtime without changing a byte, and a reader may not record anything to remember a verification.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Literal

from mmrec.errors import MmrecError

BLOCK = 8 << 20
FULL_BELOW = 64 << 20
SAMPLED_BLOCKS = 4

Verify = Literal["sampled", "full", "none"]
FileRecord = dict[str, int | list[str]]


class IndexIntegrityError(MmrecError, ValueError):
    """An index file differs from what its version recorded at save (damaged or changed in place)."""


def _block_digest(fh: object, offset: int, length: int) -> str:
    h = hashlib.sha256()
    fd = fh.fileno()  # type: ignore[attr-defined]
    done = 0
    while done < length:
        chunk = os.pread(fd, min(1 << 20, length - done), offset + done)
        if not chunk:
            break
        h.update(chunk)
        done += len(chunk)
    return h.hexdigest()


def file_record(path: Path) -> FileRecord:
    """Size and per-block SHA-256 of ``path`` (read once, in 1 MiB reads)."""
    size = os.path.getsize(path)
    blocks: list[str] = []
    with open(path, "rb") as fh:
        for offset in range(0, max(size, 1), BLOCK):
            blocks.append(_block_digest(fh, offset, min(BLOCK, size - offset)))
    return {"size": size, "block": BLOCK, "sha256": blocks}


def verify_file(path: Path, record: FileRecord, verify: Verify = "sampled") -> None:
    """Raise :class:`IndexIntegrityError` naming ``path`` when its bytes differ from ``record``."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError as exc:
        raise IndexIntegrityError(f"{path}: missing (the index version is incomplete)") from exc
    expected = int(record["size"])  # type: ignore[arg-type]
    if size != expected:
        raise IndexIntegrityError(f"{path}: {size} bytes, {expected} recorded at save (the file was changed)")
    if verify == "none":
        return
    block = int(record["block"])  # type: ignore[arg-type]
    hashes = list(record["sha256"])  # type: ignore[arg-type]
    n = len(hashes)
    if verify == "full" or size <= FULL_BELOW or n <= SAMPLED_BLOCKS + 2:
        picks = list(range(n))
    else:
        picks = sorted({0, n - 1, *random.sample(range(1, n - 1), SAMPLED_BLOCKS)})
    with open(path, "rb") as fh:
        for i in picks:
            offset = i * block
            if _block_digest(fh, offset, min(block, size - offset)) != hashes[i]:
                raise IndexIntegrityError(
                    f"{path}: checksum mismatch in bytes {offset}..{offset + block} (the file was damaged)"
                )


def legacy_digest(path: Path) -> str:
    """``sha256:<hex>`` of a whole file: the format of versions saved before block records."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def verify_version(version: Path, meta: dict[str, object], verify: Verify = "sampled") -> None:
    """Verify every file a version's meta records: block records (``files``) or whole-file digests
    (``checksums``, older versions)."""
    files = meta.get("files") or {}
    assert isinstance(files, dict)
    for name, record in files.items():
        verify_file(version / name, record, verify)
    legacy = meta.get("checksums") or {}
    assert isinstance(legacy, dict)
    for name, digest in legacy.items():
        if verify != "none" and legacy_digest(version / name) != digest:
            raise IndexIntegrityError(f"{version / name}: checksum mismatch (the file was damaged)")
