"""Benchmark the automatically chosen FAISS index against exact search on clustered synthetic embeddings.

Data: a Gaussian mixture (``--centres`` centres, within-cluster noise) normalised to unit length, so
neighbourhoods look like real embedding neighbourhoods rather than uniform noise. Queries are fresh
draws from the same mixture. Ground truth is exact brute force in numpy (chunked), independent of FAISS.

Reports build time, index bytes, process RSS, recall@k and single-query p50/p99 latency (one query per
call through ``VectorIndex.search``, FAISS limited to one thread with ``faiss.omp_set_num_threads(1)``
so latency is per core) for the auto-chosen index and for exact ``Flat`` as the baseline.

    python scripts/bench_index.py --n 100000 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrec.index import VectorIndex, choose_factory  # noqa: E402


def rss_bytes() -> int:
    """Current resident set size from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def mixture(
    n: int, centres: np.ndarray, spread: float, seed: int, local_dim: int = 0, chunk: int = 50_000
) -> np.ndarray:
    """``n`` unit vectors: a random centre plus noise, generated in chunks (float32 throughout).

    ``local_dim=0``: isotropic noise in all dimensions (a hard, high-intrinsic-dimension case).
    ``local_dim=r``: noise mostly inside an r-dimensional subspace per cluster (drawn from a pool of
    64 random bases) plus 10% isotropic noise -- closer to real embeddings, which lie near a
    low-dimensional manifold.
    """
    rng = np.random.default_rng(seed)
    dim = centres.shape[1]
    bases = None
    if local_dim:
        pool = np.random.default_rng(12345).standard_normal((64, dim, local_dim), dtype=np.float32)
        bases = np.linalg.qr(pool)[0].astype(np.float32)  # orthonormal columns
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        which = rng.integers(len(centres), size=m)
        x = centres[which].copy()
        if bases is None:
            x += spread * rng.standard_normal((m, dim), dtype=np.float32)
        else:
            coeff = rng.standard_normal((m, local_dim), dtype=np.float32) * spread * np.sqrt(dim / local_dim)
            pool_id = which % len(bases)
            for b in np.unique(pool_id):
                rows = pool_id == b
                x[rows] += coeff[rows] @ bases[b].T
            x += 0.1 * spread * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65_536) -> np.ndarray:
    """Brute-force top-k ids (row numbers) by inner product, merging per-chunk top-k lists."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(base), chunk):
        s = queries @ base[start : start + chunk].T
        part = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i


def measure(index: VectorIndex, queries: np.ndarray, truth: np.ndarray, k: int) -> dict[str, float]:
    """Recall@k and single-query latency percentiles (ms), one query per call."""
    times = np.empty(len(queries))
    hits = 0
    for i in range(len(queries)):
        t0 = time.perf_counter()
        _, ids = index.search(queries[i : i + 1], k)
        times[i] = time.perf_counter() - t0
        hits += len(set(ids[0].tolist()) & set(truth[i].tolist()))
    return {
        "recall_at_k": hits / (len(queries) * k),
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "queries": len(queries),
    }


def build(base: np.ndarray, factory: str | None, build_threads: int) -> tuple[VectorIndex, float]:
    faiss.omp_set_num_threads(build_threads)
    t0 = time.perf_counter()
    index = VectorIndex.create(base.shape[1], len(base), factory=factory, use_gpu=False)
    step = 100_000
    for start in range(0, len(base), step):
        index.add(np.arange(start, min(start + step, len(base)), dtype=np.int64), base[start : start + step])
    return index, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--flat-queries", type=int, default=200, help="queries timed on the exact baseline")
    ap.add_argument("--centres", type=int, default=4096)
    ap.add_argument("--spread", type=float, default=0.06, help="per-dimension noise around a centre")
    ap.add_argument("--local-dim", type=int, default=32, help="0 = isotropic within-cluster noise")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--factory", default=None, help="override the automatic choice")
    ap.add_argument("--ef", default="", help="comma-separated HNSW efSearch values to sweep")
    ap.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.centres, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    t0 = time.perf_counter()
    base = mixture(args.n, centres, args.spread, args.seed + 1, args.local_dim)
    queries = mixture(args.queries, centres, args.spread, args.seed + 2, args.local_dim)
    print(
        f"data: {args.n} x {args.dim} ({args.centres} centres) in {time.perf_counter() - t0:.1f}s", flush=True
    )
    t0 = time.perf_counter()
    faiss.omp_set_num_threads(args.build_threads)
    truth = exact_topk(base, queries, args.k)
    print(f"ground truth (numpy brute force): {time.perf_counter() - t0:.1f}s", flush=True)

    report: dict = {
        "n": args.n,
        "dim": args.dim,
        "k": args.k,
        "centres": args.centres,
        "local_dim": args.local_dim,
        "spread": args.spread,
        "auto_factory": choose_factory(args.dim, args.n),
        "cpu_count": os.cpu_count(),
        "faiss": faiss.__version__,
        "latency_threads": 1,
    }
    rss0 = rss_bytes()
    index, secs = build(base, args.factory, args.build_threads)
    faiss.omp_set_num_threads(1)
    entry = {
        "build_s": round(secs, 2),
        **index.describe(),
        "rss_bytes": rss_bytes(),
        "rss_growth": rss_bytes() - rss0,
    }
    entry.update(measure(index, queries, truth, args.k))
    print(json.dumps(entry), flush=True)
    report["index"] = entry
    sweep = []
    for ef in [int(x) for x in args.ef.split(",") if x]:
        index.ef_search = ef
        row = {"ef_search": ef, **measure(index, queries, truth, args.k)}
        print(json.dumps(row), flush=True)
        sweep.append(row)
    if sweep:
        report["ef_sweep"] = sweep
    del index

    rss0 = rss_bytes()
    flat, secs = build(base, "Flat", args.build_threads)
    faiss.omp_set_num_threads(1)
    nq = min(args.flat_queries, len(queries))
    fentry = {"build_s": round(secs, 2), **flat.describe(), "rss_growth": rss_bytes() - rss0}
    fentry.update(measure(flat, queries[:nq], truth[:nq], args.k))
    print(json.dumps(fentry), flush=True)
    report["flat"] = fentry
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
