"""The FAISS index of a library's fused vectors, kept in step with the store through its change log.

The index folder's meta records the store sequence number it reflects. ``open`` loads the folder and
calls :meth:`LibraryIndex.sync`, which applies ``store.changes_since(seq)``; so a crash between a store
commit and the index save is repaired on the next open without a rebuild.

A rebuild asks ``mmrec.index.choice.choose_index`` (size, width, available RAM) unless a factory is
given; when the answer is on disk (``ondisk:...``) the index is trained on a random sample of the
stored vectors and filled batch by batch from ``vectors/fused.f32`` (:class:`OnDiskIndex`), and its
searches are re-ranked with the stored full-width vectors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from mmrec.errors import IndexUnavailableError, LibraryError
from mmrec.index.atomic import read_folder, resolve
from mmrec.index.choice import (
    DEFAULT_EXACT_THRESHOLD,
    IndexChoice,
    choose_index,
    is_ondisk,
    ivf_lists,
    strip_ondisk,
)
from mmrec.index.integrity import Verify
from mmrec.index.ondisk import OnDiskIndex, batch_rows, train_size
from mmrec.index.vector_index import VectorIndex, VectorIndexError

_log = logging.getLogger(__name__)
INDEX_FOLDER = "index"
_CHUNK = 65_536
AnyIndex = VectorIndex | OnDiskIndex


def load_index(folder: str | Path, use_gpu: bool | None = None, verify: Verify = "sampled") -> AnyIndex:
    """Load whichever kind of index the current version of ``folder`` holds (in memory or on disk)."""
    folder = Path(folder)

    def kind(version: Path) -> str:
        return str(json.loads((version / "meta.json").read_text()).get("kind", "memory"))

    try:
        found = read_folder(folder, kind)
    except (OSError, ValueError) as exc:
        raise VectorIndexError(f"{folder}: not a readable index folder ({exc})") from exc
    if found == OnDiskIndex.kind:
        return OnDiskIndex.load(folder, verify=verify)
    return VectorIndex.load(folder, use_gpu=use_gpu, verify=verify)


class FusedSource(Protocol):
    """The part of ``mmrec.store.LibraryStore`` the index needs."""

    path: Path

    def fused(self, keys: Sequence[int]) -> np.ndarray: ...

    def iter_fused(self, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...

    def changes_since(self, seq: int) -> tuple[np.ndarray, np.ndarray, int]: ...


class LibraryIndex:
    """A :class:`VectorIndex` bound to a library store; ids are the store's int64 item keys."""

    def __init__(
        self,
        store: FusedSource,
        index: AnyIndex | None,
        factory: str | None = None,
        use_gpu: bool | None = None,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    ) -> None:
        self.store = store
        self.folder = Path(store.path) / INDEX_FOLDER
        self.index = index
        self.factory = factory
        self.use_gpu = use_gpu
        self.exact_threshold = exact_threshold
        self._write = threading.Lock()
        self._seq = int(index.meta.get("seq", 0)) if index is not None else 0
        self._attach(index)

    def _attach(self, index: AnyIndex | None) -> None:
        """On-disk indexes re-score their candidates with the stored full-width vectors."""
        if isinstance(index, OnDiskIndex):
            index.reranker = self.store.fused

    @classmethod
    def open(
        cls,
        store: FusedSource,
        factory: str | None = None,
        use_gpu: bool | None = None,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    ) -> LibraryIndex:
        """For writers: load ``index/`` and catch up with the store (saving), or build it when missing,
        unreadable or of another factory. Readers use :meth:`load`."""
        folder = Path(store.path) / INDEX_FOLDER
        index: AnyIndex | None = None
        if resolve(folder) is not None:
            try:
                index = load_index(folder, use_gpu=use_gpu)
            except VectorIndexError:
                index = None  # unreadable: this writer rebuilds it from the store, the source of truth
        if index is not None:
            factory = factory or index.meta.get("factory_override")
            if factory and index.factory != factory:
                index = None
        out = cls(store, index, factory, use_gpu, exact_threshold)
        if index is None:
            out.rebuild(factory)
        else:
            out.sync()
        return out

    @classmethod
    def load(cls, store: FusedSource, use_gpu: bool | None = None) -> LibraryIndex:
        """Open the index to read: load the saved folder and catch up with the store in memory.

        Readers never write: no rebuild, no save, no repair of the folder. A missing or unreadable
        index of a library that has items is an :class:`IndexUnavailableError` naming ``mmrec reindex``.
        """
        folder = Path(store.path) / INDEX_FOLDER
        try:
            index: AnyIndex | None = load_index(folder, use_gpu=use_gpu)
        except (VectorIndexError, FileNotFoundError) as exc:
            if next(iter(store.iter_fused(1)), None) is not None:
                raise IndexUnavailableError(str(store.path), f"the index cannot be read ({exc})") from exc
            index = None  # nothing encoded yet: an empty index, filled as items arrive
        factory = index.meta.get("factory_override") if index is not None else None
        out = cls(store, index, factory, use_gpu)
        out.catch_up()
        return out

    def catch_up(self) -> dict[str, int]:
        """Apply the store's changes since :attr:`seq` in memory only (what a long-lived reader does)."""
        with self._write:
            return self._apply_changes(save=False)

    @property
    def seq(self) -> int:
        """The store sequence number the index reflects."""
        return self._seq

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

    def sync(self) -> dict[str, int]:
        """Apply the store's changes since :attr:`seq` (upserts, then removals) and save if anything changed."""
        with self._write:
            return self._apply_changes(save=True)

    def _apply_changes(self, save: bool) -> dict[str, int]:
        upserted, removed, seq = self.store.changes_since(self._seq)
        if self.index is None:
            if not len(upserted):
                self._seq = seq
                return {"upserted": 0, "removed": 0, "seq": seq}
            return self._rebuild(self.factory, save=save)
        if seq == self._seq and not len(upserted) and not len(removed):
            return {"upserted": 0, "removed": 0, "seq": seq}
        n_removed = self.index.remove(removed) if len(removed) else 0
        for start in range(0, len(upserted), _CHUNK):
            keys = upserted[start : start + _CHUNK]
            vecs = self.store.fused(keys)
            if vecs.shape[1] != self.index.dim:  # the library was re-fused with another dimension
                return self._rebuild(self.factory, save=save)
            self.index.upsert(keys, vecs)
        self._seq = seq
        if save:
            self._save()
        return {"upserted": len(upserted), "removed": n_removed, "seq": seq}

    def rebuild(self, factory: str | None = None) -> dict[str, int]:
        """Build a fresh index from every fused vector in the store (what ``mmrec reindex`` runs)."""
        with self._write:
            return self._rebuild(factory or self.factory)

    def _rebuild(self, factory: str | None, save: bool = True) -> dict[str, int]:
        everything, _, seq = self.store.changes_since(0)  # the current seq, and a size estimate
        first = next(iter(self.store.iter_fused(1)), None)  # the width, without reading a big batch
        index: AnyIndex | None = None
        if first is not None:
            dim = int(first[1].shape[1])
            choice = self._choose(dim, max(len(everything), 1), factory)
            if choice is not None:
                # logged, and kept in the meta: describe()["choice"] is what `mmrec reindex`/`info` print
                _log.info("index: %s -- %s", choice.factory, choice.reason)
            chosen = factory or (choice.factory if choice is not None else None)
            if chosen is not None and is_ondisk(chosen):
                index = self._build_ondisk(dim, chosen, everything)
            else:
                index = VectorIndex.create(
                    dim,
                    expected_size=max(len(everything), 1),
                    factory=chosen,
                    use_gpu=self.use_gpu,
                    exact_threshold=self.exact_threshold,
                )
                for keys, vecs in self.store.iter_fused(_CHUNK):
                    index.add(keys, vecs)
            if choice is not None:
                index.meta["choice"] = choice.reason
        self.factory = factory
        self.index = index
        self._attach(index)
        self._seq = seq
        if index is None:  # empty library: nothing to save until the first item arrives
            return {"upserted": 0, "removed": 0, "seq": seq}
        if save:
            self._save()
        # items committed while we were building carry a newer seq: apply them now
        upserted, removed, new_seq = self.store.changes_since(seq)
        if len(upserted) or len(removed):
            index.remove(removed)
            if len(upserted):
                index.upsert(upserted, self.store.fused(upserted))
            self._seq = new_seq
            if save:
                self._save()
        return {"upserted": len(index), "removed": 0, "seq": self._seq}

    def _choose(self, dim: int, n: int, factory: str | None) -> IndexChoice | None:
        """The automatic choice (None when the user named a factory)."""
        if factory:
            return None
        return choose_index(dim, n, self.exact_threshold)

    def _build_ondisk(self, dim: int, factory: str, keys: np.ndarray) -> OnDiskIndex:
        """Train on a random sample of the stored vectors, then add them in batches (bounded memory)."""
        n = len(keys)
        nlist = ivf_lists(n)
        with contextlib.suppress(RuntimeError):  # a bad factory: OnDiskIndex.train names it
            nlist = int(faiss.extract_index_ivf(faiss.index_factory(dim, strip_ondisk(factory))).nlist)
        rng = np.random.default_rng(0)
        sample_keys = np.sort(rng.choice(keys, size=min(n, train_size(n, nlist, dim)), replace=False))
        sample = self.store.fused(sample_keys)
        return OnDiskIndex.build(
            dim, factory, sample, self.store.iter_fused(batch_rows(dim)), self.folder, meta={}
        )

    def save(self) -> None:
        """Write the index folder now (sync and rebuild already save; this is for explicit callers)."""
        with self._write:
            if self.index is not None:
                self._save()

    def _save(self) -> None:
        assert self.index is not None
        self.index.meta["seq"] = self._seq
        if self.factory:
            self.index.meta["factory_override"] = self.factory
        else:
            self.index.meta.pop("factory_override", None)
        writing = getattr(self.store, "writing", None)
        with writing() if callable(writing) else contextlib.nullcontext():
            try:
                self.index.save(self.folder)
            except (OSError, RuntimeError) as exc:  # disk full (FAISS says RuntimeError): the published
                reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc).splitlines()[-1]
                raise LibraryError(  # version stays whole (atomic save)
                    str(self.folder),
                    f"cannot save the index ({reason}); readers keep the previous version "
                    f"and catch up from the catalog: free space and run `mmrec reindex --library {self.store.path}`",
                ) from exc

    def search(
        self, query_vecs: np.ndarray, k: int, allowed_keys: np.ndarray | Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item keys per query (padding: key -1, score -inf); ``allowed_keys`` restricts the candidates."""
        q = np.atleast_2d(np.asarray(query_vecs, dtype=np.float32))
        if self.index is None:
            return np.full((q.shape[0], k), -np.inf, dtype=np.float32), np.full(
                (q.shape[0], k), -1, dtype=np.int64
            )
        allowed = None if allowed_keys is None else np.asarray(allowed_keys, dtype=np.int64)
        return self.index.search(q, k, allowed=allowed)

    def describe(self) -> dict[str, Any]:
        """The index description plus the store sequence it reflects and where it lives."""
        base: dict[str, Any] = {"factory": None, "ntotal": 0} if self.index is None else self.index.describe()
        if self.index is not None and "choice" in self.index.meta:  # written by rebuild, for either kind
            base["choice"] = self.index.meta["choice"]
        base.update(seq=self._seq, folder=str(self.folder))
        return base
