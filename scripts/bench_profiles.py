#!/usr/bin/env python3
"""Benchmark incremental profile updates: latency per event with many users and items.

Synthetic but structured data: ``--items`` unit vectors around ``--topics`` topic centres (so users grow
several interests and merges happen), ``--users`` profiles warmed with ``--history`` events each and stored
in a temporary events.sqlite. Then ``--events`` random live events are timed two ways:
``update`` (update_profile alone) and ``round trip`` (load profile blob, update, write back).
Target: p99 <= 20 ms per event for 10k users and 100k items.

    .venv/bin/python scripts/bench_profiles.py [--users 10000 --items 100000 --dim 768 --events 5000]
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time

import numpy as np

from mmrec.events import EventRecord, EventStore
from mmrec.profiles import ProfileConfig, ProfileStore, UserProfile, update_profile

KINDS = ["view", "like", "share", "skip", "dislike", "view", "view", "like"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--topics", type=int, default=50)
    ap.add_argument("--history", type=int, default=10)
    ap.add_argument("--events", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    centres = rng.standard_normal((args.topics, args.dim)).astype(np.float32)
    topic = rng.integers(0, args.topics, args.items)
    items = centres[topic] + 1.2 * rng.standard_normal((args.items, args.dim)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    attention = [{"text": 0.6, "tags": 0.4}, {"frames": 0.5, "audio": 0.3, "text": 0.2}]
    config = ProfileConfig(tau=0.3, half_life_days=30.0)
    print(f"items {items.shape} in {time.perf_counter() - t:.1f}s")

    def event(user: str, ts: float) -> tuple[EventRecord, int]:
        key = int(rng.integers(0, args.items))
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
        value = float(rng.random()) if kind == "view" else None
        return EventRecord(user, str(key), kind, value, ts), key

    with tempfile.TemporaryDirectory() as tmp, EventStore.open(tmp) as events:
        store = ProfileStore(events)
        t = time.perf_counter()
        profiles = []
        for u in range(args.users):
            prof = UserProfile(f"u{u}")
            # Each user favours three topics, like a real history would.
            favourite = rng.choice(args.topics, 3, replace=False)
            for h in range(args.history):
                pool = np.flatnonzero(topic == favourite[h % 3])
                key = int(pool[int(rng.integers(0, len(pool)))])
                ev = EventRecord(prof.user_id, str(key), "like", None, 1.7e9 + h * 3600)
                update_profile(prof, ev, items[key], attention[key % 2], key, config=config)
            profiles.append(prof)
        store.put_many(profiles)
        print(f"warmed {args.users} users x {args.history} events in {time.perf_counter() - t:.1f}s")
        n_int = [len(p.interests) for p in profiles]
        del profiles
        gc.collect()
        gc.freeze()  # long-lived objects out of the collector's way, as a serving process would do

        update_ms, update_cpu_ms, trip_ms = [], [], []
        for n in range(args.events):
            user = f"u{int(rng.integers(0, args.users))}"
            ev, key = event(user, 1.7e9 + 86400 + n)
            t0 = time.perf_counter()
            prof = store.get(user)
            t1, c1 = time.perf_counter(), time.process_time()
            update_profile(prof, ev, items[key], attention[key % 2], key, config=config)
            t2, c2 = time.perf_counter(), time.process_time()
            store.put(prof)
            t3 = time.perf_counter()
            update_ms.append((t2 - t1) * 1e3)
            update_cpu_ms.append((c2 - c1) * 1e3)
            trip_ms.append((t3 - t0) * 1e3)

    def q(xs: list[float]) -> dict[str, float]:
        a = np.asarray(xs)
        return {p: round(float(np.percentile(a, v)), 3) for p, v in (("p50", 50), ("p95", 95), ("p99", 99))}

    report = {
        "users": args.users,
        "items": args.items,
        "dim": args.dim,
        "events_timed": args.events,
        "interests_per_user_mean": round(float(np.mean(n_int)), 2),
        "update_ms": q(update_ms),
        "update_cpu_ms": q(
            update_cpu_ms
        ),  # process CPU time: excludes waiting for a core on a shared machine
        "round_trip_ms": q(trip_ms),
        "target_p99_ms": 20.0,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
