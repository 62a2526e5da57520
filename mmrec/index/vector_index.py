"""A FAISS index addressed by int64 ids: add, remove, upsert, filtered search, atomic save/load.

Two id strategies, chosen from the factory string:

* ``native``: FAISS keeps our ids and removes by id -- ``Flat``/codec indexes through ``IndexIDMap2``,
  ``IVF*`` indexes directly (``add_with_ids``/``remove_ids``).
* ``tombstone``: graph indexes (``HNSW*``) cannot remove vectors, so FAISS holds sequential internal ids,
  we map them to ours, removed rows are masked out of every search and the graph is compacted (rebuilt
  from its own stored vectors) once dead rows outnumber live ones. Upsert therefore never rebuilds.

Searches return ``(scores, ids)`` of shape (Q, k); missing results are marked with id -1 and score
-inf (inner product) or +inf (L2). Searches share a readers-writer lock with writes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from mmrec.errors import MmrecError
from mmrec.index.atomic import read_folder, write_folder_atomically
from mmrec.index.choice import DEFAULT_EXACT_THRESHOLD, DEFAULT_MEMORY_BUDGET, choose_index, is_ondisk
from mmrec.index.integrity import IndexIntegrityError, Verify, file_record, verify_version
from mmrec.index.rwlock import ReadWriteLock

_FORMAT = 1
_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
DEFAULT_EF_SEARCH = 256  # recall@10 0.99 on 1M clustered 512-d (0.96 at 128), see scripts/bench_index.py
# FAISS's default efConstruction (40) caps HNSW32 recall@10 near 0.92 on 1M clustered 512-d vectors
DEFAULT_EF_CONSTRUCTION = 128
EXACT_FILTER_LIMIT = 4096  # filtered HNSW searches over at most this many ids are scored exactly
# Below this many multiply-adds one thread answers sooner than an OpenMP team: starting the team costs
# more than the search. On the loaded 2-core machine, similar-by-id over 9 items took 20 ms p50 with
# 2 threads and 0.6 ms with 1.
SMALL_SEARCH_WORK = 1 << 25


class VectorIndexError(MmrecError, ValueError):
    """Bad index input or an unusable index folder; the message names the field or file."""


def _mode_for(factory: str) -> str:
    return "tombstone" if "HNSW" in factory.upper() or "NSG" in factory.upper() else "native"


def _set_ef_construction(index: faiss.Index, value: int) -> None:
    """Graph build quality for HNSW indexes (no-op for others)."""
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        hnsw.efConstruction = int(value)


def _ef_construction(index: faiss.Index) -> int:
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    return int(hnsw.efConstruction) if hnsw is not None else DEFAULT_EF_CONSTRUCTION


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run this thread's FAISS calls on one OpenMP thread (the setting is per calling thread)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _gpu_count() -> int:
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def check_ids_vectors(ids: Any, vecs: Any | None, dim: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Ids as int64 (non-negative, distinct) and vectors as C-contiguous finite float32 (n, dim): what
    every index (in memory or on disk) accepts; anything else is a VectorIndexError naming the field."""
    ids_arr = np.ascontiguousarray(np.asarray(ids).reshape(-1))
    if ids_arr.size and not np.issubdtype(ids_arr.dtype, np.integer):
        raise VectorIndexError(f"ids: expected integers, got dtype {ids_arr.dtype}")
    ids_arr = ids_arr.astype(np.int64)
    if ids_arr.size and ids_arr.min() < 0:
        raise VectorIndexError("ids: must be >= 0 (-1 marks a missing result)")
    if len(np.unique(ids_arr)) != len(ids_arr):
        raise VectorIndexError("ids: duplicates in one call")
    if vecs is None:
        return ids_arr, None
    v = np.ascontiguousarray(np.asarray(vecs, dtype=np.float32))
    if v.ndim != 2 or v.shape[1] != dim or v.shape[0] != len(ids_arr):
        raise VectorIndexError(f"vectors: shape {v.shape}, expected ({len(ids_arr)}, {dim})")
    if not np.all(np.isfinite(v)):
        raise VectorIndexError("vectors: contain NaN or infinite values")
    return ids_arr, v


class VectorIndex:
    """One FAISS index plus the id bookkeeping, locking, GPU copy and persistence around it."""

    def __init__(
        self,
        index: faiss.Index,
        dim: int,
        factory: str,
        metric: str = "ip",
        use_gpu: bool | None = None,
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self._index = index
        self.dim = dim
        self.factory = factory
        self.metric = metric
        self.mode = _mode_for(factory)
        self.meta: dict[str, Any] = dict(meta or {})
        self._lock = ReadWriteLock()
        self._labels = np.zeros(0, dtype=np.int64) if labels is None else labels.astype(np.int64)
        self._where: dict[int, int] = {}
        if self.mode == "tombstone":
            self._where = {int(ext): i for i, ext in enumerate(self._labels) if ext >= 0}
        elif ids is not None:
            self._where = {int(x): int(x) for x in ids}
        self._dead = int(np.sum(self._labels < 0)) if self.mode == "tombstone" else 0
        self.ef_search = DEFAULT_EF_SEARCH
        self.nprobe = self._default_nprobe()
        self.use_gpu = use_gpu is not False and _gpu_count() > 0 and self.mode == "native"
        self._gpu_index: Any = None
        self._gpu_dirty = True

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        dim: int,
        expected_size: int,
        factory: str | None = None,
        metric: str = "ip",
        use_gpu: bool | None = None,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    ) -> VectorIndex:
        """An empty index: ``factory`` if given, else the automatic choice (see ``mmrec.index.choice``)."""
        if metric not in _METRICS:
            raise VectorIndexError(f"metric {metric!r}: expected one of {sorted(_METRICS)}")
        if factory and is_ondisk(factory):
            raise VectorIndexError(
                f"factory {factory!r}: an on-disk index is built from stored vectors (mmrec.index.ondisk)"
            )
        chosen = (
            factory
            or choose_index(
                dim, expected_size, exact_threshold, memory_budget_bytes, allow_ondisk=False
            ).factory
        )
        try:
            inner = faiss.index_factory(int(dim), chosen, _METRICS[metric])
        except RuntimeError as exc:
            # FAISS prefixes the reason with its C++ location; the user needs only the reason.
            reason = str(exc).strip().rsplit(": ", 1)[-1]
            raise VectorIndexError(
                f"factory {chosen!r}: FAISS cannot build it ({reason}); see "
                "https://github.com/facebookresearch/faiss/wiki/The-index-factory for the syntax"
            ) from exc
        _set_ef_construction(inner, DEFAULT_EF_CONSTRUCTION)
        ivf = faiss.try_extract_index_ivf(inner)
        if ivf is not None and hasattr(faiss.downcast_index(ivf), "do_polysemous_training"):
            faiss.downcast_index(ivf).do_polysemous_training = False  # see mmrec.index.ondisk.no_polysemous
        index = inner
        if _mode_for(chosen) == "native" and not chosen.upper().startswith("IVF"):
            index = faiss.IndexIDMap2(inner)  # the Python wrapper keeps ``inner`` alive
        return cls(index, dim, chosen, metric, use_gpu)

    def _default_nprobe(self) -> int:
        ivf = self._ivf()
        return max(16, int(ivf.nlist) // 64) if ivf is not None else 0

    def _ivf(self) -> Any:
        try:
            return faiss.extract_index_ivf(self._index)
        except RuntimeError:
            return None

    # ---- sizes and description ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in self._where

    def ids(self) -> np.ndarray:
        """All live ids, sorted."""
        return np.sort(np.fromiter(self._where.keys(), dtype=np.int64, count=len(self._where)))

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def estimated_bytes(self) -> int:
        """RAM held by the index, estimated from its structure (serialising 1M vectors just to measure is costly)."""
        n = int(self._index.ntotal)
        ivf = self._ivf()
        if ivf is not None:
            return int(n * (ivf.code_size + 8) + ivf.nlist * self.dim * 4)
        if self.mode == "tombstone":
            hnsw_index = faiss.downcast_index(self._index)
            links = int(hnsw_index.hnsw.neighbors.size()) * 4 if hasattr(hnsw_index, "hnsw") else 0
            return int(n * (self.dim * 4 + 8) + links)
        inner = faiss.downcast_index(self._index.index)
        code = int(getattr(inner, "code_size", self.dim * 4))
        return int(n * (code + 8 + 16))

    def describe(self) -> dict[str, Any]:
        """What was built, printable: factory, size, dim, metric, GPU use and memory."""
        out: dict[str, Any] = {
            "factory": self.factory,
            "ids": self.mode,
            "ntotal": len(self),
            "dim": self.dim,
            "metric": self.metric,
            "gpu": self.use_gpu,
            "bytes": self.estimated_bytes(),
        }
        if self.mode == "tombstone":
            out.update(
                ef_search=self.ef_search, ef_construction=_ef_construction(self._index), dead=self._dead
            )
        if self.nprobe:
            out["nprobe"] = self.nprobe
        return out

    # ---- validation ---------------------------------------------------------------------------
    def _check(self, ids: Any, vecs: Any | None) -> tuple[np.ndarray, np.ndarray | None]:
        return check_ids_vectors(ids, vecs, self.dim)

    # ---- writes -------------------------------------------------------------------------------
    def train(self, sample: np.ndarray) -> None:
        """Train IVF/PQ quantisers on a sample of vectors (no-op for indexes that need no training)."""
        with self._lock.write():
            self._train(np.ascontiguousarray(np.asarray(sample, dtype=np.float32)))

    def _train(self, sample: np.ndarray) -> None:
        if self._index.is_trained:
            return
        ivf = self._ivf()
        needed = max(int(ivf.nlist) if ivf is not None else 0, 256 if "PQ" in self.factory.upper() else 1)
        if sample.shape[0] < needed:
            raise VectorIndexError(
                f"training sample: {sample.shape[0]} vectors, {self.factory!r} needs at least {needed}"
            )
        try:
            self._index.train(sample)
        except RuntimeError as exc:
            raise VectorIndexError(
                f"training {self.factory!r} on {sample.shape[0]} vectors failed: {exc}"
            ) from exc
        self.nprobe = self._default_nprobe()

    def add(self, ids: Any, vecs: Any) -> None:
        """Add new ids; an id already present is an error (use :meth:`upsert`)."""
        ids_arr, v = self._check(ids, vecs)
        assert v is not None
        with self._lock.write():
            self._add(ids_arr, v)

    def _add(self, ids_arr: np.ndarray, v: np.ndarray) -> None:
        if not len(ids_arr):
            return
        present = [int(i) for i in ids_arr if int(i) in self._where]
        if present:
            raise VectorIndexError(f"ids already in the index (use upsert): {present[:10]}")
        if not self._index.is_trained:
            self._train(v)
        if self.mode == "tombstone":
            start = int(self._index.ntotal)
            self._index.add(v)
            self._labels = np.concatenate([self._labels, ids_arr])
            self._where.update({int(e): start + i for i, e in enumerate(ids_arr)})
        else:
            self._index.add_with_ids(v, ids_arr)
            self._where.update({int(e): int(e) for e in ids_arr})
        self._gpu_dirty = True

    def remove(self, ids: Any) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        ids_arr, _ = self._check(ids, None)
        with self._lock.write():
            return self._remove(ids_arr)

    def _remove(self, ids_arr: np.ndarray) -> int:
        present = np.array([i for i in ids_arr if int(i) in self._where], dtype=np.int64)
        if not len(present):
            return 0
        if self.mode == "tombstone":
            internal = np.array([self._where.pop(int(i)) for i in present], dtype=np.int64)
            self._labels[internal] = -1
            self._dead += len(internal)
            if self._dead > max(1024, len(self._where)):
                self._compact()
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(present))
            for i in present:
                del self._where[int(i)]
        self._gpu_dirty = True
        return len(present)

    def upsert(self, ids: Any, vecs: Any) -> None:
        """Replace the vectors of existing ids and add new ones (remove then add, no rebuild)."""
        ids_arr, v = self._check(ids, vecs)
        assert v is not None
        with self._lock.write():
            self._remove(ids_arr)
            self._add(ids_arr, v)

    def _compact(self) -> None:
        """Rebuild a tombstone index from its live stored vectors, dropping dead rows."""
        live = np.flatnonzero(self._labels >= 0)
        vecs = np.vstack([self._index.reconstruct(int(i)) for i in live]) if len(live) else None
        fresh = faiss.index_factory(self.dim, self.factory, _METRICS[self.metric])
        _set_ef_construction(fresh, _ef_construction(self._index))
        if vecs is not None:
            fresh.add(np.ascontiguousarray(vecs, dtype=np.float32))
        self._index = fresh
        self._labels = self._labels[live]
        self._where = {int(e): i for i, e in enumerate(self._labels)}
        self._dead = 0

    # ---- search -------------------------------------------------------------------------------
    def search(
        self, queries: Any, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids per query, optionally restricted to ``allowed`` ids; padding is id -1, score -inf/+inf."""
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise VectorIndexError(f"queries: shape {q.shape}, expected (Q, {self.dim})")
        if k < 1:
            raise VectorIndexError(f"k must be >= 1, got {k}")
        allowed_arr = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64).reshape(-1))
        small = q.shape[0] * len(self) * self.dim <= SMALL_SEARCH_WORK or (
            q.shape[0] == 1 and self.mode == "tombstone"
        )
        with self._lock.read(), _one_thread() if small else contextlib.nullcontext():
            if allowed_arr is not None:
                allowed_arr = allowed_arr[[int(a) in self._where for a in allowed_arr]]
                if self.mode == "tombstone" and len(allowed_arr) <= EXACT_FILTER_LIMIT:
                    return self._exact_subset(q, k, allowed_arr)
            scores, labels = self._search(q, k, allowed_arr)
        return self._finish(scores, labels)

    def _empty(self, nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        fill = -np.inf if self.metric == "ip" else np.inf
        return np.full((nq, k), fill, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)

    def _exact_subset(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score a small allowed set exactly from stored vectors: graph search filters badly at low selectivity."""
        scores, ids = self._empty(q.shape[0], k)
        if not len(allowed):
            return scores, ids
        vecs = np.vstack([self._index.reconstruct(self._where[int(a)]) for a in allowed])
        sims = q @ vecs.T if self.metric == "ip" else -((q[:, None, :] - vecs[None]) ** 2).sum(-1)
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        n = top.shape[1]
        ids[:, :n] = allowed[top]
        picked = np.take_along_axis(sims, top, axis=1)
        scores[:, :n] = picked if self.metric == "ip" else -picked
        return scores, ids

    def _params(self, sel: Any) -> Any:
        if self.mode == "tombstone":
            return faiss.SearchParametersHNSW(sel=sel, efSearch=self.ef_search)
        if self._ivf() is not None:
            return faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)
        return faiss.SearchParameters(sel=sel)

    def _search(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        k_eff = max(1, min(k, max(len(self), 1)))
        if len(self) == 0:
            return self._empty(q.shape[0], k)
        if self.mode == "tombstone":
            if allowed is not None:
                internal = np.array([self._where[int(a)] for a in allowed], dtype=np.int64)
                sel = faiss.IDSelectorBatch(internal)
            elif self._dead:
                dead_sel = faiss.IDSelectorBatch(
                    np.flatnonzero(self._labels < 0)
                )  # kept alive for the search
                sel = faiss.IDSelectorNot(dead_sel)
            else:
                sel = None
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, k_eff))
            scores, internal_ids = self._index.search(q, k_eff, params=params)
            labels = np.where(internal_ids >= 0, self._labels[np.maximum(internal_ids, 0)], -1)
        elif allowed is not None:
            scores, labels = self._filtered_native(q, k_eff, allowed)
        else:
            gpu = self._gpu()
            if gpu is not None:
                scores, labels = gpu.search(q, k_eff)
            else:
                params = faiss.SearchParametersIVF(nprobe=self.nprobe) if self._ivf() is not None else None
                scores, labels = self._index.search(q, k_eff, params=params)
        if k_eff < k:
            pad_s, pad_l = self._empty(q.shape[0], k - k_eff)
            scores, labels = np.hstack([scores, pad_s]), np.hstack([labels, pad_l])
        return scores, labels

    def _filtered_native(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FAISS id selector when the index supports it; otherwise over-fetch and filter."""
        if not len(allowed):
            return self._empty(q.shape[0], k)
        sel = faiss.IDSelectorBatch(allowed)
        try:
            return self._index.search(q, k, params=self._params(sel))
        except RuntimeError:
            pass
        fetch = min(len(self), 4 * k)
        while True:
            scores, labels = self._index.search(q, fetch, params=self._params(None))
            keep = np.isin(labels, allowed)
            if fetch >= len(self) or np.all(keep.sum(axis=1) >= min(k, len(allowed))):
                break
            fetch = min(len(self), fetch * 4)
        out_s, out_l = self._empty(q.shape[0], k)
        for row in range(q.shape[0]):
            s, lab = scores[row][keep[row]][:k], labels[row][keep[row]][:k]
            out_s[row, : len(s)], out_l[row, : len(lab)] = s, lab
        return out_s, out_l

    def _finish(self, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = scores.astype(np.float32, copy=True)
        labels = labels.astype(np.int64, copy=False)
        scores[labels < 0] = -np.inf if self.metric == "ip" else np.inf
        return scores, labels

    def _gpu(self) -> Any:
        """A GPU clone of a native index for unfiltered searches, re-made lazily after writes."""
        if not self.use_gpu:
            return None
        if self._gpu_dirty or self._gpu_index is None:
            try:
                self._gpu_index = faiss.index_cpu_to_all_gpus(self._index)
                if self._ivf() is not None:
                    faiss.GpuParameterSpace().set_index_parameter(self._gpu_index, "nprobe", self.nprobe)
                self._gpu_dirty = False
            except (RuntimeError, AttributeError):
                self.use_gpu = False  # this index type has no GPU version; stay on CPU
                self._gpu_index = None
        return self._gpu_index

    # ---- persistence --------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write index + ids + meta as a new version of ``folder`` and publish it atomically.

        Readers in other processes see the old or the new version, never part of one; callers serialise
        saves to one folder (``LibraryIndex`` holds the store's writer lock).
        """
        folder = Path(folder)
        with self._lock.read():
            meta = {
                "format": _FORMAT,
                "dim": self.dim,
                "factory": self.factory,
                "metric": self.metric,
                "ntotal": len(self),
                "ef_search": self.ef_search,
                "nprobe": self.nprobe,
                "meta": self.meta,
            }

            def write(tmp: Path) -> None:
                faiss.write_index(self._index, str(tmp / "index.faiss"))
                if self.mode == "tombstone":
                    np.save(tmp / "labels.npy", self._labels)
                else:
                    np.save(tmp / "ids.npy", self.ids())
                # checksums of every file (per 8 MiB block, mmrec.index.integrity), verified on load:
                # a file damaged in place is refused, never searched (published versions never change)
                meta["files"] = {f.name: file_record(f) for f in sorted(tmp.iterdir())}
                (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

            return write_folder_atomically(folder, write)

    @classmethod
    def load(cls, folder: str | Path, use_gpu: bool | None = None, verify: Verify = "sampled") -> VectorIndex:
        """Read the current version of a folder written by :meth:`save` (``verify``: see ``mmrec.index.integrity``).

        Read-only: a save in another process at the same moment is either not seen yet or seen
        whole (see ``mmrec.index.atomic``); nothing in the folder is repaired or removed here.
        """
        folder = Path(folder)

        def read(version: Path) -> tuple[dict[str, Any], Any, np.ndarray | None, np.ndarray | None]:
            meta = json.loads((version / "meta.json").read_text())
            if meta.get("format") != _FORMAT:
                raise VectorIndexError(f"{version / 'meta.json'}: unsupported format {meta.get('format')!r}")
            if meta.get("kind", "memory") != "memory":
                raise VectorIndexError(
                    f"{version / 'meta.json'}: a {meta['kind']} index (load it with load_index)"
                )
            try:
                verify_version(version, meta, verify)
            except IndexIntegrityError as exc:
                raise VectorIndexError(str(exc)) from exc
            index = faiss.read_index(str(version / "index.faiss"))
            labels = ids = None
            if _mode_for(meta["factory"]) == "tombstone":
                labels = np.load(version / "labels.npy")
            else:
                ids = np.load(version / "ids.npy")
            return meta, index, labels, ids

        try:
            meta, index, labels, ids = read_folder(folder, read)
        except VectorIndexError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise VectorIndexError(f"{folder}: not a readable index folder ({exc})") from exc
        out = cls(
            index, int(meta["dim"]), meta["factory"], meta["metric"], use_gpu, labels, ids, meta.get("meta")
        )
        out.ef_search = int(meta.get("ef_search", DEFAULT_EF_SEARCH))
        out.nprobe = int(meta.get("nprobe", out.nprobe))
        return out
