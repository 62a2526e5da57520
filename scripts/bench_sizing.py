"""Sizing table for the on-disk index: build time, peak RSS, bytes, recall@10 and latency at one size.

Data: the clustered distribution of ``scripts/bench_index.py`` (a Gaussian mixture on the unit sphere:
``--centres`` random unit centres; each vector is a centre plus noise inside one of 64 random
``--local-dim``-dimensional subspaces plus 10% isotropic noise, normalised), written chunk by chunk
into a raw float32 file in the store's format (``mmrec.store.vectors.VectorFile``: what
``vectors/fused.f32`` is), so the whole set is never in memory. Queries are fresh draws from the same
mixture. Ground truth: a chunked brute-force scan of the file (numpy, independent of FAISS).

The index is what ``mmrec reindex`` builds when the codes do not fit in RAM: ``OnDiskIndex.build``
trained on a random sample of the file and filled in batches read with ``pread`` (no mapping of the
vector file, so RSS measures the builder, not the page cache). Reported: build (train + add) seconds,
peak RSS (``getrusage``), shard bytes, recall@10 of the PQ scores alone and re-ranked with the stored
vectors (the default), single-query p50/p99 on one thread, and the load average around each phase.

    nice -n 10 python scripts/bench_sizing.py --n 1000000 --dim 3328 --work /tmp/sizing --reduced PCA256
    nice -n 10 python scripts/bench_sizing.py --n 10000000 --dim 512 --work /tmp/sizing

The data file is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrec.index.choice import ONDISK_PREFIX, ivfpq_factory, pq_bytes  # noqa: E402
from mmrec.index.ondisk import OnDiskIndex, batch_rows, train_size  # noqa: E402
from mmrec.store.vectors import VectorFile  # noqa: E402


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def default_factory(n: int, dim: int) -> str:
    """The automatic on-disk choice (``mmrec.index.choice``): IVF ~4*sqrt(n) lists, <=8 dims per PQ byte."""
    return ONDISK_PREFIX + ivfpq_factory(n, dim)


class Mixture:
    """``bench_index.mixture``'s distribution (its 64 subspace bases drawn once, not per chunk)."""

    def __init__(self, centres: np.ndarray, spread: float, local_dim: int) -> None:
        self.centres, self.spread, self.local_dim = centres, spread, local_dim
        dim = centres.shape[1]
        pool = np.random.default_rng(12345).standard_normal((64, dim, local_dim), dtype=np.float32)
        # unit columns of a Gaussian matrix: orthonormal up to O(1/sqrt(dim)), without 64 QRs
        self.bases = pool / np.linalg.norm(pool, axis=1, keepdims=True)

    def draw(self, m: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        dim = self.centres.shape[1]
        which = rng.integers(len(self.centres), size=m)
        x = self.centres[which].copy()
        coeff = (
            rng.standard_normal((m, self.local_dim), dtype=np.float32)
            * self.spread
            * np.sqrt(dim / self.local_dim)
        )
        pool_id = which % len(self.bases)
        for b in np.unique(pool_id):
            rows = pool_id == b
            x[rows] += coeff[rows] @ self.bases[b].T
        x += 0.1 * self.spread * rng.standard_normal((m, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_data(vf: VectorFile, n: int, gen: Mixture, seed: int) -> None:
    chunk = max(1000, (64 << 20) // (4 * vf.dim))
    for i, start in enumerate(range(0, n, chunk)):
        vf.append(gen.draw(min(chunk, n - start), seed + 10 + i))


def exact_topk(vf: VectorFile, n: int, q: np.ndarray, k: int) -> np.ndarray:
    """Top-k rows by inner product, scanning the file in pread chunks and merging per-chunk top-k."""
    chunk = max(1000, (128 << 20) // (4 * vf.dim))
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(q), k), -1, dtype=np.int64)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk), dtype=np.int64)
        s = q @ vf.stream(rows).T
        part = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def batches(vf: VectorFile, n: int):  # noqa: ANN201
    step = batch_rows(vf.dim)
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step), dtype=np.int64)
        yield rows, vf.stream(rows)


def measure(index: OnDiskIndex, q: np.ndarray, truth: np.ndarray, k: int) -> dict[str, float]:
    """Recall@k and one-query-per-call latency on one FAISS thread."""
    faiss.omp_set_num_threads(1)
    times = np.empty(len(q))
    hits = 0
    for i in range(len(q)):
        t0 = time.perf_counter()
        _, ids = index.search(q[i : i + 1], k)
        times[i] = time.perf_counter() - t0
        hits += len(set(ids[0].tolist()) & set(truth[i].tolist()))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return {
        "recall_at_10": hits / (len(q) * k),
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
    }


def run_one(
    vf: VectorFile,
    n: int,
    factory: str,
    q: np.ndarray,
    truth: np.ndarray,
    folder: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    row: dict[str, Any] = {"factory": factory, "load_before_build": load()}
    nlist = int(faiss.extract_index_ivf(faiss.index_factory(vf.dim, factory[len(ONDISK_PREFIX) :])).nlist)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    sample_rows = np.sort(rng.choice(n, size=train_size(n, nlist, vf.dim), replace=False))
    sample = vf.stream(sample_rows)
    row["train_rows"] = len(sample_rows)
    trained_at = time.perf_counter()
    index = OnDiskIndex.build(
        vf.dim, factory, sample, batches(vf, n), folder, max_shard_bytes=args.shard_bytes
    )
    del sample
    built = time.perf_counter()
    index.save(folder)
    row.update(
        build_s=round(built - t0, 1),
        sample_read_s=round(trained_at - t0, 1),
        save_s=round(time.perf_counter() - built, 1),
        peak_rss_bytes=peak_rss(),
        index_bytes=index.disk_bytes(),
        shards=len(index._shards),
        resident_bytes=index.estimated_bytes(),
        load_after_build=load(),
    )
    index = OnDiskIndex.load(folder)
    row["nprobe_default"] = index.nprobe
    row["pq_only"] = measure(index, q, truth, args.k)
    index.reranker = vf.stream  # the stored full-width vectors, read with pread
    row["reranked"] = measure(index, q, truth, args.k)
    default = index.nprobe
    for nprobe in args.nprobe:
        if nprobe != default:
            index.nprobe = nprobe
            row[f"reranked_nprobe{nprobe}"] = measure(index, q, truth, args.k)
    index.nprobe = default
    for factor in args.rerank:
        index.rerank = factor
        row[f"reranked_x{factor}"] = measure(index, q, truth, args.k)
    row["load_after_search"] = load()
    row["peak_rss_bytes_after_search"] = peak_rss()
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--work", type=Path, required=True, help="folder for the vector file and the index")
    ap.add_argument("--factory", default=None, help="default: the automatic on-disk choice")
    ap.add_argument("--reduced", default=None, help='e.g. "PCA256": also measure a reduced-width index')
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--centres", type=int, default=4096)
    ap.add_argument("--spread", type=float, default=0.06)
    ap.add_argument("--local-dim", type=int, default=32)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nprobe", type=lambda v: [int(x) for x in v.split(",") if x], default=[64, 256])
    ap.add_argument("--rerank", type=lambda v: [int(x) for x in v.split(",") if x], default=[50])
    ap.add_argument("--shard-bytes", type=int, default=2 << 30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the vector file")
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    args = ap.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"n": args.n, "dim": args.dim, "queries": args.queries, "cpus": os.cpu_count()}
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.centres, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gen = Mixture(centres, args.spread, args.local_dim)
    vf = VectorFile.create(args.work, "fused", args.dim)
    try:
        out["load_before_data"] = load()
        t0 = time.perf_counter()
        if vf.n_rows() != args.n:
            vf.path.write_bytes(b"")
            write_data(vf, args.n, gen, args.seed)
        out["data_s"] = round(time.perf_counter() - t0, 1)
        out["data_bytes"] = os.path.getsize(vf.path)
        q = gen.draw(args.queries, args.seed + 2)
        t0 = time.perf_counter()
        truth = exact_topk(vf, args.n, q, args.k)
        out["exact_s"] = round(time.perf_counter() - t0, 1)
        out["load_after_exact"] = load()
        print(json.dumps(out), flush=True)
        factory = args.factory or default_factory(args.n, args.dim)
        out["full"] = run_one(vf, args.n, factory, q, truth, args.work / "index", args)
        shutil.rmtree(args.work / "index", ignore_errors=True)
        if args.reduced:
            reduced = ONDISK_PREFIX + args.reduced + "," + factory[len(ONDISK_PREFIX) :]
            if pq_bytes(args.dim) and "PQ" in reduced:
                width = int("".join(ch for ch in args.reduced.split("_")[-1] if ch.isdigit()))
                reduced = reduced.rsplit(",PQ", 1)[0] + f",PQ{pq_bytes(width)}"
            out["reduced"] = run_one(vf, args.n, reduced, q, truth, args.work / "index-reduced", args)
            shutil.rmtree(args.work / "index-reduced", ignore_errors=True)
    finally:
        if not args.keep:
            vf.path.unlink(missing_ok=True)
    out["peak_rss_bytes"] = peak_rss()
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
