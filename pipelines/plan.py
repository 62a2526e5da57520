"""Decide what an encode run must do, from what is on disk and what the library already holds.

Planning is what makes re-runs cheap and a killed run resumable exactly once: an item whose
commit landed is ``unchanged`` next time, an item whose commit did not land is still ``new``.
Size+mtime are compared first; the partial content hash is computed only when they differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipelines.discover import Discovery, SourceItem, partial_hash

FileState = tuple[int | None, float | None, str | None, str]
_MTIME_TOL = 1e-3


class PlanStore(Protocol):
    """The part of :class:`mmrec.store.LibraryStore` that planning reads."""

    def file_states(self) -> dict[str, FileState]: ...

    def find_by_path(self, path: str) -> object | None: ...

    def get(self, item_id: str) -> object | None: ...


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

    def counts(self) -> dict[str, int]:
        return {
            "todo": len(self.todo) + len(self.text),
            "reject": len(self.reject),
            "unchanged": self.unchanged,
            "skipped_failed": self.skipped_failed,
            "delete": len(self.delete_ids),
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
) -> Plan:
    """Classify every discovered file as new/changed (todo), unchanged, failed-before, or deleted."""
    plan = Plan()
    states = store.file_states()
    seen: set[str] = set()
    for item in found.files:
        assert item.path is not None
        seen.add(item.path)
        state = states.get(item.path)
        meta_digest = item.meta.digest()
        if state is not None:
            size, mtime, stored_hash, status = state
            same_stat = (
                size == item.size and mtime is not None and abs(mtime - (item.mtime or 0.0)) < _MTIME_TOL
            )
            same_meta = _meta_part(stored_hash) == meta_digest
            if same_stat and same_meta:
                if status == "ok":
                    plan.unchanged += 1
                    continue
                if not retry_failed:
                    plan.skipped_failed += 1
                    continue
            elif same_meta and item.reject_reason is None:
                content = hasher(item.path, item.size)
                if content == _content_part(stored_hash) and status == "ok":
                    plan.unchanged += 1  # touched but identical: nothing to re-encode
                    continue
                plan.hashes[item.path] = item_hash(item, content)
            old = store.find_by_path(item.path)
            old_id = getattr(old, "item_id", None)
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
        wanted = item_hash(item, None)
        if old is not None and getattr(old, "content_hash", None) == wanted:
            plan.unchanged += 1
            continue
        plan.hashes[item.item_id] = wanted
        plan.text.append(item)
    return plan


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
        content = hasher(item.path, item.size) if item.path and item.reject_reason is None else None
        plan.hashes[key] = item_hash(item, content)
    return plan.hashes[key]
