"""Four reader threads query while one writer commits 2,000 items: no errors, only whole rows."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mmrec.store import ItemRecord, LibraryStore

N_ITEMS = 2000
BATCH = 50


def test_readers_see_consistent_rows_while_a_writer_commits(tmp_path: Path, encode, media_records) -> None:
    real = [r for r in media_records if r.path]

    def item(i: int, version: int):
        src = real[i % len(real)]
        rec = ItemRecord(
            f"clip-{i}",
            f"{src.path}#{i}",
            src.kind,
            src.content_hash,
            src.size,
            src.mtime,
            title=f"{src.title} {i}",
            metadata={"version": version, "source": src.item_id},
        )
        return encode(rec, seed=i * 10 + version)

    expected = {(i, v): item(i, v) for i in range(N_ITEMS) for v in (0, 1)}
    store = LibraryStore.open(tmp_path / "lib")
    done = threading.Event()
    errors: list[BaseException] = []
    checks = [0] * 4

    def check_one(rid: int, rng: random.Random) -> None:
        rec = store.get(f"clip-{rid}")
        if rec is None:
            return
        assert rec.key is not None and rec.metadata["version"] in (0, 1)
        fused = store.fused([rec.key])[0]
        assert any(np.array_equal(fused, expected[(rid, v)].fused) for v in (0, 1)), rid
        frames = store.vectors("frames", [rec.key])[0]
        assert frames.shape == (16, 32)
        assert any(np.array_equal(frames, expected[(rid, v)].vectors["frames"]) for v in (0, 1)), rid

    def reader(idx: int) -> None:
        rng = random.Random(idx)
        try:
            while not done.is_set() or checks[idx] < 50:
                check_one(rng.randrange(N_ITEMS), rng)
                if rng.random() < 0.05:  # a full scan sees each committed item exactly once
                    seen = [k for keys, _ in store.iter_fused(batch_size=333) for k in keys.tolist()]
                    assert len(seen) == len(set(seen))
                checks[idx] += 1
                time.sleep(0.0005)  # let the writer have the GIL now and then
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        keys: dict[int, int] = {}
        for start in range(0, N_ITEMS, BATCH):
            batch = [expected[(i, 0)] for i in range(start, start + BATCH)]
            for i, k in zip(range(start, start + BATCH), store.commit_items(batch, "v0"), strict=True):
                keys[i] = k
            if start % 200 == 0 and start:  # replace some earlier items: same key, new vectors
                redo = list(range(start - 200, start, 40))
                assert store.commit_items([expected[(i, 1)] for i in redo], "v0") == [keys[i] for i in redo]
    finally:
        done.set()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors[0]
    assert min(checks) >= 50
    assert store.stats()["items"] == N_ITEMS
    seen = np.concatenate([k for k, _ in store.iter_fused(batch_size=500)])
    assert sorted(seen.tolist()) == sorted(keys.values())
    store.close()


def test_a_reader_process_follows_a_writer_process(tmp_path: Path) -> None:
    """The server case: this process reads while another process appends (files grow under our memmaps)."""
    lib = tmp_path / "lib"
    root = Path(__file__).resolve().parents[2]
    child = """
import sys
import numpy as np
from mmrec.store import EncodedItem, ItemRecord, LibraryStore
store = LibraryStore.open(sys.argv[1])
for b in range(40):
    items = []
    for i in range(b * 10, b * 10 + 10):
        rng = np.random.default_rng(i)
        items.append(EncodedItem(ItemRecord(f"p{i}", None, "text"), {"text": rng.standard_normal((1, 16)).astype(np.float32)},
                                 rng.standard_normal(48).astype(np.float32), {"text": 1.0}))
    store.commit_items(items, "v0")
"""
    store = LibraryStore.open(lib)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", child, str(lib)], env=env)
    checked, seen_counts = 0, set()
    try:
        while True:
            running = proc.poll() is None
            records = list(store.items())
            seen_counts.add(len(records))
            for rec in records[-10:]:
                rng = np.random.default_rng(int(rec.item_id[1:]))
                text = rng.standard_normal((1, 16)).astype(np.float32)
                np.testing.assert_array_equal(store.vectors("text", [rec.key])[0], text)
                np.testing.assert_array_equal(
                    store.fused([rec.key])[0], rng.standard_normal(48).astype(np.float32)
                )
                checked += 1
            if not running:
                break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0
    assert len(list(store.items())) == 400
    assert checked > 0 and len(seen_counts) > 2  # we really read while it was writing
    store.close()
