"""Decide what an encode run must do, from what is on disk and what the library already holds.

Planning is what makes re-runs cheap and a killed run resumable exactly once: an item whose
commit landed is ``unchanged`` next time, an item whose commit did not land is still ``new``.
Size+mtime are compared first; the partial content hash is computed only when they differ.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mmrec.store.library import Source
from pipelines.discover import Alias, Discovery, SourceItem, partial_hash

FileState = tuple[int | None, float | None, str | None, str]
_MTIME_TOL = 1e-3
# Reasons that earlier versions recorded for failures of the machine, not the file (a pool that could
# not start, timeouts, the OOM killer): such a row is retried instead of skipped as failed.
_ENVIRONMENT_REASONS = (
    "All workers expired",
    "The Pool is not active",
    "Unexpected error within the Pool",
    "the worker was killed",  # the per-file timeout
    "(exit code -9)",
    "killed by signal SIGKILL",
)


def is_environment_reason(reason: str) -> bool:
    """Whether a recorded failure reason blames the environment rather than the file."""
    return any(marker in reason for marker in _ENVIRONMENT_REASONS)


class PlanStore(Protocol):
    """The part of :class:`mmrec.store.LibraryStore` that planning reads."""

    def file_states(self) -> dict[str, FileState]: ...

    def find_by_path(self, path: str) -> object | None: ...

    def get(self, item_id: str) -> object | None: ...

    def identities(self) -> tuple[dict[str, str], dict[str, str | None]]: ...

    def sources(self) -> list[Source]: ...


@dataclass
class Plan:
    """Work for one run. ``todo`` items get decoded+encoded, ``reject`` items are recorded as failures."""

    todo: list[SourceItem] = field(default_factory=list)
    reject: list[SourceItem] = field(default_factory=list)
    text: list[SourceItem] = field(default_factory=list)
    unchanged: int = 0
    skipped_failed: int = 0
    delete_ids: list[str] = field(default_factory=list)
    forget_paths: list[str] = field(default_factory=list)  # failed files that are gone from disk
    hashes: dict[str, str] = field(default_factory=dict)  # path or item_id -> content hash to store
    aliases: list[Alias] = field(default_factory=list)  # second names of files found in this walk

    def counts(self) -> dict[str, int]:
        return {
            "todo": len(self.todo) + len(self.text),
            "reject": len(self.reject),
            "unchanged": self.unchanged,
            "skipped_failed": self.skipped_failed,
            "delete": len(self.delete_ids),
            "aliases": len(self.aliases),
        }


def item_hash(item: SourceItem, content: str | None) -> str:
    """Stored fingerprint: content hash plus metadata digest, so editing a sidecar re-encodes."""
    return f"{content or '-'}:{item.meta.digest()}"


def _meta_part(stored: str | None) -> str | None:
    return stored.rsplit(":", 1)[-1] if stored and ":" in stored else None


def _content_part(stored: str | None) -> str | None:
    return stored.rsplit(":", 1)[0] if stored and ":" in stored else stored


def make_plan(
    found: Discovery,
    store: PlanStore,
    retry_failed: bool = False,
    hasher: Callable[[str, int | None], str] = partial_hash,
    source: Source | None = None,
) -> Plan:
    """Classify every discovered file as new/changed (todo), unchanged, failed-before, or deleted.

    With ``source`` (the walked folder as registered in the library) each file first gets its item
    id (:func:`assign_ids`); without it the ids discovery proposed are used as they are.
    """
    plan = Plan(aliases=list(found.aliases))
    states = store.file_states()
    failures = getattr(store, "failures", None)
    retry_paths = {p for p, reason, _ in failures() if is_environment_reason(reason)} if failures else set()
    by_path: dict[str, str] = {}
    if source is not None:
        by_path = assign_ids(found, store, source)
    seen: set[str] = set()
    for item in found.files:
        assert item.path is not None
        seen.add(item.path)
        state = states.get(item.path)
        meta_digest = item.meta.digest()
        stored_id = by_path.get(item.path)
        renamed = stored_id is not None and stored_id != item.item_id
        if state is not None and not renamed:
            size, mtime, stored_hash, status = state
            same_stat = (
                size == item.size and mtime is not None and abs(mtime - (item.mtime or 0.0)) < _MTIME_TOL
            )
            same_meta = _meta_part(stored_hash) == meta_digest
            if same_stat and same_meta:
                if status == "ok":
                    plan.unchanged += 1
                    continue
                if not retry_failed and item.path not in retry_paths:
                    plan.skipped_failed += 1
                    continue
            elif same_meta and item.reject_reason is None:
                content = _safe_hash(hasher, item)
                if content is None:
                    plan.reject.append(item)
                    continue
                if content == _content_part(stored_hash) and status == "ok":
                    plan.unchanged += 1  # touched but identical: nothing to re-encode
                    continue
                plan.hashes[item.path] = item_hash(item, content)
        if state is not None:
            old_id = (
                stored_id if source is not None else getattr(store.find_by_path(item.path), "item_id", None)
            )
            if old_id is not None and old_id != item.item_id:
                plan.delete_ids.append(old_id)  # the sidecar renamed the item: drop the stale id
        if item.reject_reason is not None:
            plan.hashes.setdefault(item.path, item_hash(item, None))
            plan.reject.append(item)
        else:
            plan.todo.append(item)
    deleted, forgotten = _vanished(found.root, states, seen, store)
    plan.delete_ids.extend(deleted)
    plan.forget_paths.extend(forgotten)
    for item in found.text_items:
        old = store.get(item.item_id)
        if old is not None and getattr(old, "path", None) is not None:
            item.reject_reason = (
                f"item id {item.item_id!r} is already used by the media file {old.path}; "
                "a text-only row needs an id of its own"
            )
            plan.reject.append(item)
            continue
        wanted = item_hash(item, None)
        if old is not None and getattr(old, "content_hash", None) == wanted:
            plan.unchanged += 1
            continue
        plan.hashes[item.item_id] = wanted
        plan.text.append(item)
    return plan


def assign_ids(found: Discovery, store: PlanStore, source: Source) -> dict[str, str]:
    """Give each file its item id; returns the stored path -> id map it was checked against.

    The rule (docs/architecture.md, "Item identity"): a sidecar/manifest ``item_id`` is used as
    given; otherwise a file keeps the id already stored for its path when that id is one of its
    default forms here or under a registered folder that contains it (so re-encoding a folder, or
    a subfolder of one, never flips an id), else it gets ``source.prefix + rel`` and, if
    another file already owns that, ``label:rel``. An id owned by another file that still exists,
    or given to two files of this walk, is never taken over: the file is rejected with the reason.
    """
    by_path, by_id = store.identities()
    nesting = [s for s in store.sources() if s.root != source.root]
    claimed: dict[str, str] = {}
    for item in found.files:
        assert item.path is not None
        if item.rel is not None and item.meta.item_id is None:
            forms = (source.prefix + item.rel, source.qualified(item.rel), item.rel)
            stored = by_path.get(item.path)
            if stored in forms or stored in _forms_elsewhere(str(found.root / item.rel), nesting):
                item.item_id = stored
            else:
                primary = forms[0]
                taken = (
                    by_id.get(primary, item.path) != item.path or claimed.get(primary, item.path) != item.path
                )
                item.item_id = forms[1] if taken else primary
        if item.reject_reason is not None:
            continue
        owner = claimed.get(item.item_id)
        if owner is None and item.item_id in by_id:
            held = by_id[item.item_id]
            owner = None if held == item.path or (held is not None and not os.path.lexists(held)) else held
            if held is None:
                owner = "a text-only item"
        if owner is not None and owner != item.path:
            item.reject_reason = (
                f"item id {item.item_id!r} is already used by {owner}; give this file an item_id "
                "of its own in a sidecar (<file>.json) or the --metadata manifest"
            )
            continue
        claimed[item.item_id] = item.path
    return by_path


def _forms_elsewhere(entry: str, sources: list[Source]) -> set[str]:
    """Default ids the entry has under other registered folders that contain it (a parent folder
    encoded earlier): a file keeps such an id, so encoding a subfolder never renames its items."""
    out: set[str] = set()
    for s in sources:
        if entry.startswith(s.root.rstrip("/") + "/"):
            rel = entry[len(s.root.rstrip("/")) + 1 :]
            out.update((s.prefix + rel, s.qualified(rel)))
    return out


def _safe_hash(hasher: Callable[[str, int | None], str], item: SourceItem) -> str | None:
    """The content hash, or None with ``item.reject_reason`` set when the file cannot be read now."""
    assert item.path is not None
    try:
        return hasher(item.path, item.size)
    except OSError as exc:
        item.reject_reason = f"cannot read the file ({exc.strerror or type(exc).__name__})"
        return None


def _vanished(
    root: Path, states: dict[str, FileState], seen: set[str], store: PlanStore
) -> tuple[list[str], list[str]]:
    """Items (and failure rows) whose file lived under ``root`` and is gone; files elsewhere are left alone."""
    prefix = str(root).rstrip("/") + "/"
    items: list[str] = []
    failures: list[str] = []
    for path, state in sorted(states.items()):
        if path in seen or not path.startswith(prefix):
            continue
        rec = store.find_by_path(path)
        item_id = getattr(rec, "item_id", None)
        if item_id is not None:
            items.append(item_id)
        elif state[3] != "ok":
            failures.append(path)
    return items, failures


def ensure_hash(plan: Plan, item: SourceItem, hasher: Callable[[str, int | None], str] = partial_hash) -> str:
    """The fingerprint to store for ``item``, hashing its content now if planning did not need to."""
    key = item.path or item.item_id
    if key not in plan.hashes:
        content = None
        if item.path and item.reject_reason is None:
            try:
                content = hasher(item.path, item.size)
            except OSError:
                content = None  # gone or unreadable since it was decoded: the next run hashes again
        plan.hashes[key] = item_hash(item, content)
    return plan.hashes[key]
