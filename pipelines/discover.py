"""Find the items of a media folder (and of an optional manifest) without decoding anything.

Discovery must be cheap enough to run on every ``mmrec encode``: it stats files, sniffs a few
magic bytes and reads sidecars. Content hashes are computed later, and only for files whose
size or mtime changed (see :mod:`pipelines.plan`). ``probe`` in the decode stage has the final
word on a file's kind; the sniff only filters out what is plainly not media.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmrec.errors import InvalidInputError
from mmrec.limits import check_item_text

SIDECAR_SUFFIX = ".json"
MANIFEST_FIELDS = ("path", "item_id", "title", "description", "tags")
_CHUNK = 1 << 20  # bytes read at the head, middle and tail for the partial content hash


@dataclass
class ItemMeta:
    """User-supplied description of an item (sidecar JSON or manifest row)."""

    item_id: str | None = None
    title: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def digest(self) -> str:
        """Short stable fingerprint so an edited sidecar re-encodes its item."""
        payload = json.dumps(
            [self.item_id, self.title, self.description, self.tags, self.extra], sort_keys=True, default=str
        )
        return hashlib.blake2b(payload.encode("utf-8"), digest_size=8).hexdigest()


@dataclass
class SourceItem:
    """One thing to encode: a media file (``path`` set) or a text-only manifest row (``path`` None)."""

    item_id: str
    path: str | None
    kind: str | None  # sniffed guess: video|audio|image|text; None = not media (see ``reject_reason``)
    size: int | None = None
    mtime: float | None = None
    meta: ItemMeta = field(default_factory=ItemMeta)
    reject_reason: str | None = None
    rel: str | None = None  # the entry's path under the walked root (the link's own name for a symlink)

    @property
    def explicit_id(self) -> bool:
        """Whether the user named the item (sidecar or manifest) rather than leaving the id to its path."""
        return self.meta.item_id is not None or self.path is None


@dataclass
class Alias:
    """A second name of a file already found in the same walk (symlink or hard link): no item of its own."""

    path: str  # the alias's own path (not resolved)
    target: SourceItem  # the entry that holds the item


@dataclass
class Discovery:
    """What a walk found: every candidate file, plus the manifest's text-only items."""

    root: Path
    files: list[SourceItem]
    text_items: list[SourceItem]
    aliases: list[Alias] = field(default_factory=list)


# --------------------------------------------------------------------------- magic bytes

_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def sniff_kind(head: bytes) -> str | None:
    """Guess ``video|audio|image`` from a file's first bytes; ``None`` when it is no known container."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "audio" if head[8:12] in _AUDIO_BRANDS else "video"
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WAVE": "audio", b"AVI ": "video", b"WEBP": "image"}.get(head[8:12])
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if head[:4] in (b"OggS", b"fLaC", b"caff") or head[:3] == b"ID3" or head[:4] == b".snd":
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and head[:3] != b"\xff\xd8\xff":
        return "audio"  # MPEG audio frame sync (MP3) or ADTS AAC
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:4] in (b"GIF8",):
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*") or head[:2] == b"BM":
        return "image"
    if head[:4] == b"\x1a\x45\xdf\xa3" or head[:3] == b"FLV" or head[:4] == b"\x00\x00\x01\xba":
        return "video"  # Matroska/WebM, FLV, MPEG-PS (probe may still say audio-only)
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "video"  # MPEG transport stream
    return None


def partial_hash(path: str | Path, size: int | None = None) -> str:
    """blake2b over size + first, middle and last MiB: detects edits without reading whole videos."""
    size = os.path.getsize(path) if size is None else size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= 3 * _CHUNK:
            h.update(fh.read())
        else:
            for offset in (0, size // 2 - _CHUNK // 2, size - _CHUNK):
                fh.seek(offset)
                h.update(fh.read(_CHUNK))
    return h.hexdigest()


# --------------------------------------------------------------------------- metadata


def _split_tags(value: object, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    if isinstance(value, str):
        sep = ";" if ";" in value else ","
        return [t.strip() for t in value.split(sep) if t.strip()]
    raise InvalidInputError(where, "tags", "must be a list or a ';'/','-separated string")


def _meta_from_mapping(data: dict, where: str) -> ItemMeta:
    """Validate one sidecar/manifest mapping into :class:`ItemMeta`."""
    for name in ("item_id", "title", "description"):
        value = data.get(name)
        if value is not None and not isinstance(value, str | int):
            raise InvalidInputError(where, name, f"must be a string, got {type(value).__name__}")
    item_id = data.get("item_id")
    item_id = str(item_id).strip() if item_id not in (None, "") else None
    extra = {k: v for k, v in data.items() if k not in MANIFEST_FIELDS and v not in (None, "")}
    meta = ItemMeta(
        item_id=item_id,
        title=str(data.get("title") or "").strip(),
        description=str(data.get("description") or "").strip(),
        tags=_split_tags(data.get("tags"), where),
        extra=extra,
    )
    check_item_text(where, meta.item_id, meta.title, meta.description, meta.tags)
    return meta


def read_sidecar(path: Path) -> ItemMeta:
    """``<file>.json`` next to a media file: item_id, title, description, tags (+ extra fields kept)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(str(path), "(file)", f"sidecar is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(str(path), "(file)", "sidecar must hold a JSON object")
    return _meta_from_mapping(data, str(path))


def read_manifest(path: str | Path) -> list[tuple[str | None, ItemMeta]]:
    """Rows of a CSV or JSONL manifest as (media path or None, metadata); bad rows name file, line, field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(str(path), "(file)", f"cannot read manifest ({exc})") from exc
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{lineno}", "(line)", f"not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise InvalidInputError(f"{path}:{lineno}", "(line)", "each line must be a JSON object")
            rows.append((lineno, row))
    elif path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        if not reader.fieldnames or not ({"path", "item_id"} & set(reader.fieldnames)):
            raise InvalidInputError(f"{path}:1", "(header)", "must name at least 'path' or 'item_id'")
        try:
            for row in reader:
                if None in row:
                    raise InvalidInputError(
                        f"{path}:{reader.line_num}", "(row)", "more cells than header columns"
                    )
                rows.append((reader.line_num, dict(row)))
        except csv.Error as exc:  # e.g. a field above csv's 128 KiB limit, far above every field bound
            raise InvalidInputError(f"{path}:{reader.line_num + 1}", "(row)", str(exc)) from None
    else:
        raise InvalidInputError(str(path), "(file)", "manifest must be .csv, .tsv or .jsonl")
    out: list[tuple[str | None, ItemMeta]] = []
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        media = row.get("path")
        if media is not None and not isinstance(media, str):
            raise InvalidInputError(where, "path", "must be a string")
        meta = _meta_from_mapping(row, where)
        media = (media or "").strip() or None
        if media is None and meta.item_id is None:
            raise InvalidInputError(where, "item_id", "is required for a row without 'path'")
        if media is None and not (meta.title or meta.description or meta.tags):
            raise InvalidInputError(where, "title", "a text-only row needs a title, description or tags")
        out.append((media, meta))
    return out


# --------------------------------------------------------------------------- the walk


def _walk(root: Path, unreadable: list[tuple[Path, OSError]]) -> Iterator[Path]:
    """Entries under ``root`` that are not folders, sorted, skipping hidden files and folders.

    Folders that cannot be listed go to ``unreadable`` (``os.walk`` would skip them silently).
    Symlinked folders are not followed, so a link to ``/`` or a loop of folders walks nothing.
    """

    def onerror(exc: OSError) -> None:
        if exc.filename is not None:
            unreadable.append((Path(exc.filename), exc))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _is_sidecar(path: Path, names: set[str]) -> bool:
    return path.suffix == SIDECAR_SUFFIX and path.name[: -len(SIDECAR_SUFFIX)] in names


def discover(media_dir: str | Path, manifest: str | Path | None = None) -> Discovery:
    """Walk ``media_dir`` deterministically and attach sidecar/manifest metadata to each file."""
    root = Path(media_dir).resolve()
    if not root.is_dir():
        raise InvalidInputError(str(media_dir), "MEDIA_DIR", "does not exist or is not a folder")
    by_path: dict[str, ItemMeta] = {}
    text_items: list[SourceItem] = []
    if manifest is not None:
        for media, meta in read_manifest(manifest):
            if media is None:
                text_items.append(SourceItem(item_id=meta.item_id or "", path=None, kind="text", meta=meta))
            else:
                p = Path(media)
                by_path[str((p if p.is_absolute() else root / p).resolve())] = meta
    unreadable: list[tuple[Path, OSError]] = []
    paths = list(_walk(root, unreadable))
    per_dir: dict[Path, set[str]] = {}
    for p in paths:
        per_dir.setdefault(p.parent, set()).add(p.name)
    files: list[SourceItem] = []
    # The manifest may live inside the media folder (a common layout): it is metadata, not media.
    manifest_path = str(Path(manifest).resolve()) if manifest is not None else None
    entries: list[tuple[SourceItem, tuple[int, int] | None, bool]] = []
    for p in paths:
        if _is_sidecar(p, per_dir[p.parent]) or (manifest_path is not None and _resolved(p) == manifest_path):
            continue
        entries.append(_source_for(p, root, by_path))
    for folder, exc in unreadable:
        entries.append(
            (_unreadable(folder, root, f"cannot list this folder ({_os_reason(exc)})"), None, False)
        )
    files, aliases = _split_aliases(entries, root)
    return Discovery(root=root, files=files, text_items=text_items, aliases=aliases)


def _split_aliases(
    entries: list[tuple[SourceItem, tuple[int, int] | None, bool]], root: Path
) -> tuple[list[SourceItem], list[Alias]]:
    """One item per file: entries that are the same file (device, inode) collapse into one.

    The real file wins over symlinks to it, then the first name in walk order; the other names
    are aliases. Without this, ``alias.png -> 050.png`` gave two encodes of one path, and the
    alias's id took the item while ``050.png`` got none.
    """
    groups: dict[tuple[int, int], list[tuple[SourceItem, bool]]] = {}
    for item, ident, is_link in entries:
        if ident is not None:
            groups.setdefault(ident, []).append((item, is_link))
    holder: dict[int, SourceItem] = {}
    for members in groups.values():
        owner = next((it for it, link in members if not link), members[0][0])
        for it, _ in members:
            holder[id(it)] = owner
    files: list[SourceItem] = []
    aliases: list[Alias] = []
    for item, ident, _ in entries:
        owner = holder.get(id(item), item) if ident is not None else item
        if owner is item:
            files.append(item)
        else:
            aliases.append(Alias(path=str(root / (item.rel or "")), target=owner))
    return files, aliases


def _resolved(path: Path) -> str | None:
    try:
        return str(path.resolve(strict=True))
    except (OSError, RuntimeError):
        return None


def _os_reason(exc: OSError) -> str:
    """A short, stable reason for an OS error (the same text on every run: failures are compared)."""
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__


def _unreadable(path: Path, root: Path, reason: str) -> SourceItem:
    """A failure entry for something that cannot be read, keyed by its own (unresolved) path."""
    try:
        st = os.lstat(path)
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size, mtime = None, None
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    return SourceItem(
        item_id=rel,
        path=os.path.abspath(path),
        kind=None,
        size=size,
        mtime=mtime,
        reject_reason=reason,
        rel=rel,
    )


def _sniff(path: Path, st: os.stat_result) -> tuple[str | None, str | None]:
    """(kind, reject reason) from the file's type, size and first bytes."""
    if not stat.S_ISREG(st.st_mode):
        return None, "empty file" if st.st_size == 0 else "not a regular file"
    if st.st_size == 0:
        return None, "empty file"
    try:
        with open(path, "rb") as fh:
            kind = sniff_kind(fh.read(512))
    except OSError as exc:
        return None, f"cannot read the file ({_os_reason(exc)})"
    return kind, None if kind is not None else "not a media file"


def _source_for(
    path: Path, root: Path, manifest_meta: dict[str, ItemMeta]
) -> tuple[SourceItem, tuple[int, int] | None, bool]:
    """The entry for one walked name, its file identity (device, inode) and whether it is a symlink.

    Dangling links, link loops and unreadable files become rejected entries with the reason: one
    of them must never stop the walk.
    """
    is_link = path.is_symlink()
    try:
        st = path.stat()
    except OSError as exc:
        if is_link and exc.errno == errno.ENOENT:
            reason = f"dangling symlink (its target {os.readlink(path)} does not exist)"
        else:
            reason = ("symlink: " if is_link and exc.errno != errno.ELOOP else "") + _os_reason(exc)
        return _unreadable(path, root, reason), None, is_link
    abspath = str(path.resolve())
    rel = path.relative_to(root).as_posix()
    meta = manifest_meta.get(abspath)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    kind: str | None = None
    reason: str | None = None
    if meta is None and sidecar.exists():
        try:
            meta = read_sidecar(sidecar)
        except InvalidInputError as exc:
            # The file fails, not the run; the error is part of the metadata digest, so fixing
            # the sidecar makes the next run try the file again.
            reason = str(exc)
            meta = ItemMeta(extra={"sidecar_error": reason})
    meta = meta or ItemMeta()
    item_id = meta.item_id or rel
    if reason is None:
        kind, reason = _sniff(path, st)
    item = SourceItem(
        item_id=item_id,
        path=abspath,
        kind=kind,
        size=st.st_size,
        mtime=st.st_mtime,
        meta=meta,
        reject_reason=reason,
        rel=rel,
    )
    return item, (st.st_dev, st.st_ino), is_link
