"""An IVF-PQ index larger than RAM: trained on a sample, filled in chunks, searched from memory-mapped shards.

Layout of one version of ``index/`` (same ``CURRENT`` pointer, writer lock and checksums as any index):

* ``trained.faiss``: the trained, empty index (coarse centroids, PQ tables, optional OPQ/PCA transform).
  It holds the only copy of the coarse quantiser; every shard and the delta search through it.
* ``shard-NNNN.faiss``: a FAISS IVF file holding up to ``max_shard_bytes`` of codes+ids (and an empty
  placeholder quantiser), read with ``IO_FLAG_MMAP`` so its inverted lists are an
  ``OnDiskInvertedLists`` over the file: resident are only the pages the searches touch, and the
  kernel may drop them at any time.
  ``shard-NNNN.ids.npy``: the shard's ids, sorted (read memory-mapped). ``shard-NNNN.dead.npy``: ids
  whose copy in that shard no longer counts (removed or updated since the shard was written).
* ``delta.faiss`` + ``delta.ids.npy``: an ordinary in-memory index from the same ``trained.faiss``
  that takes every add and update after the build; it becomes a new shard once it holds
  ``max_shard_bytes``.

**Shard size rule:** a shard holds at most ``max_shard_bytes`` (default 2 GiB) of list data, i.e.
``max_shard_bytes // (code_size + 8)`` vectors: 29M vectors of 64-byte codes, 5M of 416-byte codes.
A file of that size is copied, hashed and rewritten (compaction loads one shard in RAM) comfortably.

Shard files are read-only (FAISS aborts the process on a write to a read-only ``OnDiskInvertedLists``),
so removals are tombstones per shard, excluded from every search with an ``IDSelector``; a shard whose
dead ids pass half of it is rewritten at the next save. A new version hard-links the shard files
it did not change from the version it was loaded from, so a save after one update writes kilobytes,
not gigabytes.

PQ scores are approximate; with a ``reranker`` (``LibraryIndex`` passes ``store.fused``: the stored
full-width vectors) the top ``k * rerank`` candidates are re-scored exactly, which is what brings
recall@10 near the in-memory indexes (figures in docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import ArrayLike

from mmrec.index.atomic import TEMP_PREFIX, read_folder, resolve, write_folder_atomically
from mmrec.index.choice import ONDISK_PREFIX, strip_ondisk
from mmrec.index.integrity import FileRecord, IndexIntegrityError, Verify, file_record, verify_version
from mmrec.index.rwlock import ReadWriteLock
from mmrec.index.vector_index import _METRICS, VectorIndexError, check_ids_vectors

KIND = "ondisk"
FORMAT = 2  # 2: shard and delta files hold an empty coarse quantiser; trained.faiss holds the one copy
READABLE_FORMATS = (1, 2)  # format-1 shards carry their own copy and keep using it
DEFAULT_SHARD_BYTES = 2 << 30
DEFAULT_RERANK = 10
TRAIN_BYTES = 1 << 30  # the training sample is at most this many bytes of float32
TRAIN_PER_LIST = 30
BATCH_BYTES = 128 << 20  # vectors read per add batch
EXACT_FILTER_LIMIT = 4096  # filtered searches over at most this many live ids are scored exactly
COARSE_EF = 64  # HNSW coarse quantiser: efSearch 16 (FAISS's default) put 13% of vectors in another list


def train_size(n: int, nlist: int, dim: int, max_bytes: int = TRAIN_BYTES) -> int:
    """Rows to train on: ~30 per IVF list (at least 10k for the PQ tables), at most ``max_bytes`` of float32."""
    want = max(nlist * TRAIN_PER_LIST, 10_000)
    return int(max(1, min(n, want, max_bytes // (4 * dim))))


def batch_rows(dim: int) -> int:
    """Rows per add batch so that one batch is about ``BATCH_BYTES``."""
    return int(max(1024, BATCH_BYTES // (4 * dim)))


def no_polysemous(index: faiss.Index) -> None:
    """The factory turns on polysemous training for IVF-PQ: a code reordering that only the unused
    Hamming pre-filter needs, and that took 55 of the 59 s of training IVF64,PQ8 on 3,000 vectors."""
    with contextlib.suppress(RuntimeError):
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if hasattr(ivf, "do_polysemous_training"):
            ivf.do_polysemous_training = False


def _ivf(index: faiss.Index) -> Any:
    return faiss.extract_index_ivf(index)


@contextlib.contextmanager
def _without_quantizer(index: faiss.Index) -> Iterator[None]:
    """Write ``index`` with an empty coarse quantiser in place of its own: every shard would otherwise
    repeat the centroids (872 MB each at 65,536 lists x 3,328 dims), in its file and in RAM once loaded."""
    ivf = _ivf(index)
    real, owned = ivf.quantizer, ivf.own_fields
    placeholder = faiss.IndexFlat(int(ivf.d), ivf.metric_type)
    ivf.own_fields = False
    ivf.quantizer = placeholder
    try:
        yield
    finally:
        ivf.quantizer = real
        ivf.own_fields = owned


def _share_quantizer(index: faiss.Index, trained: faiss.Index) -> faiss.Index:
    """Point a shard or delta read from disk (or cloned) at ``trained``'s coarse quantiser.

    ``trained`` must outlive ``index`` (both live on the :class:`OnDiskIndex`). The shard's own
    quantiser is released here when it is a full copy (a clone, a format-1 shard); an empty placeholder
    read from a format-2 file is left allocated (a few hundred bytes): handing it to Python to free
    broke SWIG's type table for IndexIVFPQ in this FAISS build (later reads came back as raw pointers).
    """
    ivf, shared = _ivf(index), _ivf(trained).quantizer
    own = ivf.quantizer
    if own.ntotal not in (0, shared.ntotal) or own.d != shared.d:
        raise VectorIndexError(
            f"coarse quantiser of {own.ntotal} x {own.d}, expected {shared.ntotal} x {shared.d}"
        )
    if own.ntotal and ivf.own_fields:
        own.reset()  # the copy's centroids (and graph) are freed; the empty object stays with ``index``
    ivf.own_fields = False
    ivf.quantizer = shared
    return index


def _empty_from(trained: faiss.Index) -> faiss.Index:
    """A new, empty index from ``trained`` (a shard being filled, the delta) that searches through
    ``trained``'s coarse quantiser instead of a copy of it."""
    return _share_quantizer(faiss.clone_index(trained), trained)


def _params(index: faiss.Index, nprobe: int, sel: Any) -> Any:
    ivf_params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
    if isinstance(faiss.downcast_index(index), faiss.IndexPreTransform):
        return faiss.SearchParametersPreTransform(index_params=ivf_params)
    return ivf_params


@dataclass
class _Shard:
    name: str
    path: Path  # where the .faiss file lives now (a version folder or the build staging folder)
    index: faiss.Index
    ids: np.ndarray  # sorted, memory-mapped
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # sorted
    records: dict[str, FileRecord] = field(default_factory=dict)

    @property
    def live(self) -> int:
        return int(len(self.ids) - len(self.dead))

    def holds(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` have a live copy in this shard."""
        if not len(self.ids) or not len(ids):
            return np.zeros(len(ids), dtype=bool)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        found = np.asarray(self.ids[pos]) == ids
        if len(self.dead):
            found &= ~np.isin(ids, self.dead)
        return found


def _open_shard(
    folder: Path, name: str, trained: faiss.Index, records: dict[str, FileRecord] | None = None
) -> _Shard:
    path = folder / f"{name}.faiss"
    index = _share_quantizer(
        faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY), trained
    )
    ids = np.load(folder / f"{name}.ids.npy", mmap_mode="r")
    dead_path = folder / f"{name}.dead.npy"
    dead = np.load(dead_path) if dead_path.exists() else np.zeros(0, dtype=np.int64)
    return _Shard(name, path, index, ids, dead, dict(records or {}))


class OnDiskIndex:
    """Sharded, memory-mapped IVF-PQ with ids, tombstones, an in-memory delta and exact re-ranking.

    The same surface as :class:`mmrec.index.vector_index.VectorIndex` where ``LibraryIndex`` and
    ``mmrec check`` use it: ``add``/``remove``/``upsert``/``search``/``ids``/``describe``/``save``/``load``.
    """

    kind = KIND
    mode = "native"

    def __init__(
        self,
        dim: int,
        factory: str,
        metric: str,
        trained: faiss.Index,
        shards: list[_Shard],
        delta: faiss.Index,
        delta_ids: np.ndarray,
        meta: dict[str, Any] | None = None,
        max_shard_bytes: int = DEFAULT_SHARD_BYTES,
        nprobe: int | None = None,
    ) -> None:
        self.dim = int(dim)
        self.factory = factory if factory.lower().startswith(ONDISK_PREFIX) else ONDISK_PREFIX + factory
        self.metric = metric
        self.meta: dict[str, Any] = dict(meta or {})
        self._trained = trained
        self._shards = shards
        self._delta = delta
        self._delta_ids: set[int] = {int(x) for x in delta_ids}
        self.max_shard_bytes = int(max_shard_bytes)
        self.nprobe = int(nprobe) if nprobe else max(16, int(_ivf(trained).nlist) // 64)
        self.rerank = DEFAULT_RERANK
        self.reranker: Callable[[np.ndarray], np.ndarray] | None = None
        self.use_gpu = False
        self.ef_search = 0
        self._lock = ReadWriteLock()
        self._staging: Path | None = None
        self._version: Path | None = None  # the version folder the shard files were loaded from

    # ---- construction -------------------------------------------------------------------------
    @staticmethod
    def train(dim: int, factory: str, sample: np.ndarray, metric: str = "ip") -> faiss.Index:
        """A trained, empty FAISS index of ``factory`` (without ``ondisk:``); must be an IVF index."""
        if metric not in _METRICS:
            raise VectorIndexError(f"metric {metric!r}: expected one of {sorted(_METRICS)}")
        inner = strip_ondisk(factory)
        try:
            index = faiss.index_factory(int(dim), inner, _METRICS[metric])
            ivf = _ivf(index)
        except RuntimeError as exc:
            reason = str(exc).strip().rsplit(": ", 1)[-1]
            raise VectorIndexError(
                f"factory {factory!r}: an on-disk index needs an IVF factory FAISS can build ({reason})"
            ) from exc
        no_polysemous(index)
        x = np.ascontiguousarray(sample, dtype=np.float32)
        if x.shape[0] < max(int(ivf.nlist), 256 if "PQ" in inner.upper() else 1):
            raise VectorIndexError(
                f"training sample: {x.shape[0]} vectors, {factory!r} needs at least {max(int(ivf.nlist), 256)}"
            )
        index.train(x)
        quantizer = faiss.downcast_index(ivf.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):  # saved with the index; a search for nprobe > ef widens it
            quantizer.hnsw.efSearch = max(int(quantizer.hnsw.efSearch), COARSE_EF)
        return index

    @classmethod
    def build(
        cls,
        dim: int,
        factory: str,
        sample: np.ndarray,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        staging_parent: str | Path,
        metric: str = "ip",
        max_shard_bytes: int = DEFAULT_SHARD_BYTES,
        meta: dict[str, Any] | None = None,
    ) -> OnDiskIndex:
        """Train on ``sample``, then add ``(ids, vectors)`` batches into shard files, one shard in RAM at a time.

        Peak memory: the sample, one batch, and one shard's codes (at most ``max_shard_bytes``),
        whatever the number of vectors. Files go to a staging folder inside ``staging_parent`` (the
        index folder: same file system, named like a writer temp so a dead builder's files are
        cleaned); :meth:`save` then links them into a published version.
        """
        trained = cls.train(dim, factory, sample, metric)
        ivf = _ivf(trained)
        per_vector = int(ivf.code_size) + 8
        shard_rows = max(1, int(max_shard_bytes) // per_vector)
        parent = Path(staging_parent)
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f"{TEMP_PREFIX}{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}-build"
        staging.mkdir()
        shards: list[_Shard] = []
        current = _empty_from(trained)
        current_ids: list[np.ndarray] = []

        def flush() -> None:
            nonlocal current, current_ids
            if not current.ntotal:
                return
            name = f"shard-{len(shards):04d}"
            with _without_quantizer(current):
                faiss.write_index(current, str(staging / f"{name}.faiss"))
            np.save(staging / f"{name}.ids.npy", np.sort(np.concatenate(current_ids)))
            current = _empty_from(trained)  # frees the shard's codes
            current_ids = []
            shards.append(_open_shard(staging, name, trained))

        try:
            for ids, vecs in batches:
                ids_arr = np.ascontiguousarray(ids, dtype=np.int64)
                v = np.ascontiguousarray(vecs, dtype=np.float32)
                if v.ndim != 2 or v.shape[1] != dim or len(v) != len(ids_arr):
                    raise VectorIndexError(f"vectors: shape {v.shape}, expected ({len(ids_arr)}, {dim})")
                start = 0
                while start < len(ids_arr):
                    room = shard_rows - int(current.ntotal)
                    part = slice(start, start + room)
                    current.add_with_ids(v[part], ids_arr[part])
                    current_ids.append(ids_arr[part].copy())
                    start += room
                    if current.ntotal >= shard_rows:
                        flush()
            flush()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        all_ids = np.concatenate([np.asarray(s.ids) for s in shards]) if shards else np.zeros(0, np.int64)
        if len(np.unique(all_ids)) != len(all_ids):
            shutil.rmtree(staging, ignore_errors=True)
            raise VectorIndexError("ids: duplicates in the vectors to index")
        out = cls(
            dim,
            factory,
            metric,
            trained,
            shards,
            _empty_from(trained),
            np.zeros(0, np.int64),
            meta,
            max_shard_bytes,
        )
        out._staging = staging
        return out

    # ---- sizes --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(s.live for s in self._shards) + len(self._delta_ids)

    def __contains__(self, item_id: int) -> bool:
        return bool(self._where(np.asarray([int(item_id)], dtype=np.int64))[0])

    def ids(self) -> np.ndarray:
        """All live ids, sorted."""
        parts = [np.setdiff1d(np.asarray(s.ids), s.dead, assume_unique=True) for s in self._shards]
        parts.append(np.fromiter(self._delta_ids, dtype=np.int64, count=len(self._delta_ids)))
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    @property
    def is_trained(self) -> bool:
        return True

    def disk_bytes(self) -> int:
        """Bytes of the shard files (the list data on disk)."""
        return sum(os.path.getsize(s.path) for s in self._shards)

    def estimated_bytes(self) -> int:
        """RAM held without the page cache: centroids and tables (once), id maps, tombstones, the delta."""
        coarse = faiss.serialize_index(_ivf(self._trained).quantizer).nbytes  # held once, by trained
        with _without_quantizer(self._trained):
            tables = faiss.serialize_index(self._trained).nbytes  # held by trained, each shard, the delta
        delta = len(self._delta_ids) * (int(_ivf(self._trained).code_size) + 8)
        return int(
            coarse + tables * (2 + len(self._shards)) + delta + sum(len(s.dead) * 8 for s in self._shards)
        )

    def describe(self) -> dict[str, Any]:
        """What was built, printable: factory, size, shards, bytes resident and on disk."""
        out: dict[str, Any] = {
            "factory": self.factory,
            "ids": "native",
            "ntotal": len(self),
            "dim": self.dim,
            "metric": self.metric,
            "gpu": False,
            "bytes": self.estimated_bytes(),
            "disk_bytes": self.disk_bytes(),
            "shards": len(self._shards),
            "dead": sum(len(s.dead) for s in self._shards),
            "delta": len(self._delta_ids),
            "nprobe": self.nprobe,
            "rerank": self.rerank if self.reranker is not None else 0,
        }
        return out

    # ---- writes -------------------------------------------------------------------------------
    def _check(self, ids: ArrayLike, vecs: ArrayLike | None) -> tuple[np.ndarray, np.ndarray | None]:
        return check_ids_vectors(ids, vecs, self.dim)

    def _where(self, ids: np.ndarray) -> np.ndarray:
        live = np.isin(ids, np.fromiter(self._delta_ids, dtype=np.int64, count=len(self._delta_ids)))
        for s in self._shards:
            live |= s.holds(ids)
        return live

    def add(self, ids: ArrayLike, vecs: ArrayLike) -> None:
        """Add new ids (into the in-memory delta); an id already present is an error (use :meth:`upsert`)."""
        ids_arr, v = self._check(ids, vecs)
        assert v is not None
        with self._lock.write():
            present = ids_arr[self._where(ids_arr)]
            if len(present):
                raise VectorIndexError(f"ids already in the index (use upsert): {present[:10].tolist()}")
            self._add(ids_arr, v)

    def _add(self, ids_arr: np.ndarray, v: np.ndarray) -> None:
        if len(ids_arr):
            self._delta.add_with_ids(v, ids_arr)
            self._delta_ids.update(int(i) for i in ids_arr)

    def remove(self, ids: ArrayLike) -> int:
        """Remove ids (unknown ones are ignored): tombstones in shards, real removal from the delta."""
        ids_arr, _ = self._check(ids, None)
        with self._lock.write():
            return self._remove(ids_arr)

    def _remove(self, ids_arr: np.ndarray) -> int:
        removed: set[int] = set()
        for s in self._shards:
            hit = ids_arr[s.holds(ids_arr)]
            if len(hit):
                s.dead = np.union1d(s.dead, hit)
                removed.update(int(i) for i in hit)
        in_delta = [int(i) for i in ids_arr if int(i) in self._delta_ids]
        if in_delta:
            self._delta.remove_ids(faiss.IDSelectorBatch(np.asarray(in_delta, dtype=np.int64)))
            self._delta_ids.difference_update(in_delta)
            removed.update(in_delta)
        return len(removed)

    def upsert(self, ids: ArrayLike, vecs: ArrayLike) -> None:
        """Replace the vectors of existing ids and add new ones: the old copies become tombstones."""
        ids_arr, v = self._check(ids, vecs)
        assert v is not None
        with self._lock.write():
            self._remove(ids_arr)
            self._add(ids_arr, v)

    # ---- search -------------------------------------------------------------------------------
    def search(
        self, queries: ArrayLike, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids per query over every shard and the delta, optionally restricted to ``allowed``;
        re-scored exactly by :attr:`reranker` when set. Padding: id -1, score -inf (ip) / +inf (l2)."""
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise VectorIndexError(f"queries: shape {q.shape}, expected (Q, {self.dim})")
        if k < 1:
            raise VectorIndexError(f"k must be >= 1, got {k}")
        allowed_arr = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64).reshape(-1))
        fetch = k * max(1, self.rerank) if self.reranker is not None else k
        with self._lock.read():
            if allowed_arr is not None:
                allowed_arr = allowed_arr[self._where(allowed_arr)]
                if self.reranker is not None and len(allowed_arr) <= EXACT_FILTER_LIMIT:
                    # a small candidate set is scored exactly: an IVF search only sees the probed lists
                    labels = np.broadcast_to(allowed_arr, (q.shape[0], len(allowed_arr)))
                    return self._top(*self._rerank(q, np.ascontiguousarray(labels)), k)
            scores, labels = self._search_parts(q, fetch, allowed_arr)
        if self.reranker is not None:
            scores, labels = self._rerank(q, labels)
        return self._top(scores, labels, k)

    def _search_parts(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        all_s: list[np.ndarray] = []
        all_l: list[np.ndarray] = []
        keep: list[Any] = []  # selectors must outlive the search call
        for s in self._shards:
            if allowed is not None:
                pick = allowed[s.holds(allowed)]
                if not len(pick):
                    continue
                sel = faiss.IDSelectorBatch(pick)
            elif len(s.dead):
                inner = faiss.IDSelectorBatch(s.dead)
                keep.append(inner)
                sel = faiss.IDSelectorNot(inner)
            else:
                sel = None
            keep.append(sel)
            sc, lb = s.index.search(q, k, params=_params(s.index, self.nprobe, sel))
            all_s.append(sc)
            all_l.append(lb)
        if self._delta_ids:
            sel = None
            if allowed is not None:
                delta = np.fromiter(self._delta_ids, dtype=np.int64, count=len(self._delta_ids))
                pick = allowed[np.isin(allowed, delta)]
                sel = faiss.IDSelectorBatch(pick) if len(pick) else None
                if sel is None:
                    return self._merge(all_s, all_l, q.shape[0], k)
            keep.append(sel)
            sc, lb = self._delta.search(q, k, params=_params(self._delta, self.nprobe, sel))
            all_s.append(sc)
            all_l.append(lb)
        return self._merge(all_s, all_l, q.shape[0], k)

    def _merge(
        self, scores: list[np.ndarray], labels: list[np.ndarray], nq: int, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if not scores:
            return self._empty(nq, k)
        s = np.hstack(scores).astype(np.float32)
        lab = np.hstack(labels).astype(np.int64)
        s[lab < 0] = -np.inf if self.metric == "ip" else np.inf
        return self._top(s, lab, k)

    def _top(self, s: np.ndarray, lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-s if self.metric == "ip" else s, axis=1, kind="stable")[:, :k]
        s = np.take_along_axis(s, order, axis=1)
        lab = np.take_along_axis(lab, order, axis=1)
        if s.shape[1] < k:
            pad_s, pad_l = self._empty(s.shape[0], k - s.shape[1])
            s, lab = np.hstack([s, pad_s]), np.hstack([lab, pad_l])
        lab = np.where(np.isfinite(s), lab, -1)
        return s, lab

    def _rerank(self, q: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores from the full-width stored vectors for every candidate."""
        assert self.reranker is not None
        cand = np.unique(labels[labels >= 0])
        out = np.full(labels.shape, -np.inf if self.metric == "ip" else np.inf, dtype=np.float32)
        if not len(cand):
            return out, labels
        vecs = np.asarray(self.reranker(cand), dtype=np.float32)
        pos = np.searchsorted(cand, np.maximum(labels, 0))
        for row in range(q.shape[0]):
            ok = labels[row] >= 0
            v = vecs[pos[row][ok]]
            if self.metric == "ip":
                out[row, ok] = v @ q[row]
            else:
                out[row, ok] = ((v - q[row]) ** 2).sum(axis=1)
        return out, labels

    def _empty(self, nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        fill = -np.inf if self.metric == "ip" else np.inf
        return np.full((nq, k), fill, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)

    # ---- persistence --------------------------------------------------------------------------
    def _code_bytes(self) -> int:
        return int(_ivf(self._trained).code_size) + 8

    def save(self, folder: str | Path) -> Path:
        """Publish a new version: link unchanged shard files, write tombstones and the delta.

        The delta becomes a shard when it holds ``max_shard_bytes``; a shard more than half dead is
        rewritten without its dead ids (one shard in RAM). Callers hold the store's writer lock.
        """
        folder = Path(folder)
        with self._lock.write():
            if len(self._delta_ids) * self._code_bytes() >= self.max_shard_bytes:
                self._freeze_delta()
            for i, s in enumerate(self._shards):
                if len(s.ids) and len(s.dead) * 2 > len(s.ids):
                    self._shards[i] = self._compact(s)
            meta: dict[str, Any] = {
                "kind": KIND,
                "format": FORMAT,
                "dim": self.dim,
                "factory": self.factory,
                "metric": self.metric,
                "ntotal": len(self),
                "nprobe": self.nprobe,
                "rerank": self.rerank,
                "max_shard_bytes": self.max_shard_bytes,
                "shards": [s.name for s in self._shards],
                "meta": self.meta,
            }

            def write(tmp: Path) -> None:
                files: dict[str, FileRecord] = {}
                for s in self._shards:
                    for suffix in (".faiss", ".ids.npy"):
                        name = s.name + suffix
                        src = s.path.parent / name
                        try:
                            os.link(src, tmp / name)
                        except FileNotFoundError as exc:
                            raise VectorIndexError(
                                f"{src}: the shard this index was loaded from was removed by another "
                                "writer; reload the index (mmrec reindex rebuilds it)"
                            ) from exc
                        files[name] = s.records.get(name) or file_record(tmp / name)
                    if len(s.dead):
                        np.save(tmp / f"{s.name}.dead.npy", s.dead)
                        files[f"{s.name}.dead.npy"] = file_record(tmp / f"{s.name}.dead.npy")
                faiss.write_index(self._trained, str(tmp / "trained.faiss"))
                with _without_quantizer(self._delta):
                    faiss.write_index(self._delta, str(tmp / "delta.faiss"))
                delta_ids = np.sort(np.fromiter(self._delta_ids, dtype=np.int64, count=len(self._delta_ids)))
                np.save(tmp / "delta.ids.npy", delta_ids)
                for name in ("trained.faiss", "delta.faiss", "delta.ids.npy"):
                    files[name] = file_record(tmp / name)
                meta["files"] = files
                (tmp / "meta.json").write_text(json.dumps(meta))

            write_folder_atomically(folder, write)
            version = resolve(folder)
            assert version is not None
            for s in self._shards:
                s.path = version / f"{s.name}.faiss"
                s.records = {n: r for n, r in meta["files"].items() if n.startswith(s.name + ".")}
            self._version = version
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)  # the published version holds links
                self._staging = None
        return folder

    def _new_staging(self) -> Path:
        parent = (self._version or (self._shards[0].path.parent if self._shards else Path("."))).parent
        if self._staging is None:
            stamp = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}-build"
            self._staging = parent / f"{TEMP_PREFIX}{stamp}"
            self._staging.mkdir(parents=True)
        return self._staging

    def _next_name(self) -> str:
        used = {int(s.name.split("-")[1]) for s in self._shards}
        return f"shard-{(max(used) + 1) if used else 0:04d}"

    def _freeze_delta(self) -> None:
        staging = self._new_staging()
        name = self._next_name()
        with _without_quantizer(self._delta):
            faiss.write_index(self._delta, str(staging / f"{name}.faiss"))
        np.save(staging / f"{name}.ids.npy", np.sort(np.fromiter(self._delta_ids, dtype=np.int64)))
        self._shards.append(_open_shard(staging, name, self._trained))
        self._delta = _empty_from(self._trained)
        self._delta_ids = set()

    def _compact(self, s: _Shard) -> _Shard:
        staging = self._new_staging()
        full = faiss.read_index(str(s.path))  # this shard in RAM, at most max_shard_bytes
        full.remove_ids(faiss.IDSelectorBatch(s.dead))
        name = self._next_name()
        _share_quantizer(full, self._trained)  # a format-1 shard's own copy is dropped here
        with _without_quantizer(full):
            faiss.write_index(full, str(staging / f"{name}.faiss"))
        np.save(staging / f"{name}.ids.npy", np.setdiff1d(np.asarray(s.ids), s.dead, assume_unique=True))
        return _open_shard(staging, name, self._trained)

    @classmethod
    def load(cls, folder: str | Path, verify: Verify = "sampled") -> OnDiskIndex:
        """Open the current version read-only: shard lists memory-mapped, checksums verified per ``verify``."""
        folder = Path(folder)

        def read(version: Path) -> OnDiskIndex:
            meta = json.loads((version / "meta.json").read_text())
            if meta.get("kind") != KIND or meta.get("format") not in READABLE_FORMATS:
                raise VectorIndexError(
                    f"{version / 'meta.json'}: not an on-disk index of format {READABLE_FORMATS}"
                )
            try:
                verify_version(version, meta, verify)
            except IndexIntegrityError as exc:
                raise VectorIndexError(str(exc)) from exc
            files = meta.get("files") or {}
            trained = faiss.read_index(str(version / "trained.faiss"))
            shards = [
                _open_shard(
                    version, name, trained, {n: r for n, r in files.items() if n.startswith(name + ".")}
                )
                for name in meta["shards"]
            ]
            delta = _share_quantizer(faiss.read_index(str(version / "delta.faiss")), trained)
            delta_ids = np.load(version / "delta.ids.npy")
            out = cls(
                int(meta["dim"]),
                meta["factory"],
                meta["metric"],
                trained,
                shards,
                delta,
                delta_ids,
                meta.get("meta"),
                int(meta.get("max_shard_bytes", DEFAULT_SHARD_BYTES)),
                int(meta.get("nprobe") or 0) or None,
            )
            out.rerank = int(meta.get("rerank", DEFAULT_RERANK))
            out._version = version
            return out

        try:
            return read_folder(folder, read)
        except VectorIndexError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise VectorIndexError(f"{folder}: not a readable index folder ({exc})") from exc
