"""SIGKILL a writer at a random moment: the library reopens cleanly with only whole items."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmrec.store import LibraryStore

ROOT = Path(__file__).resolve().parents[2]

# shared by the child (which writes) and the parent (which checks)
VECTORS = """
import numpy as np

N_IDS = 120

def item_vectors(j, version):
    rng = np.random.default_rng(j * 1000 + version)
    vecs = {"frames": rng.standard_normal((16, 32)).astype(np.float32),
            "audio": rng.standard_normal((1, 24)).astype(np.float32),
            "text": rng.standard_normal((1, 16)).astype(np.float32)}
    return vecs, rng.standard_normal(48).astype(np.float32)
"""

CHILD = (
    VECTORS
    + """
import sys
from mmrec.store import EncodedItem, ItemRecord, LibraryStore

store = LibraryStore.open(sys.argv[1])
step = int(sys.argv[2])
stop = int(sys.argv[4]) if len(sys.argv) > 4 else -1
while step != stop:
    batch = []
    for b in range(10):
        n = step * 10 + b
        j, version = n % N_IDS, n // N_IDS
        vecs, fused = item_vectors(j, version)
        rec = ItemRecord(f"item-{j}", f"{sys.argv[3]}#{j}", "video", metadata={"version": version})
        batch.append(EncodedItem(rec, vecs, fused, {"frames": 0.5, "audio": 0.3, "text": 0.2}))
    store.commit_items(batch, "v0")
    print(step, flush=True)
    step += 1
    if step % 7 == 0:
        store.compact()
        print("compacted", flush=True)
"""
)


def _run_until_killed(lib: Path, start_step: int, media: str, rng: random.Random) -> int:
    """Start a committing child, let it commit a random number of batches, SIGKILL it; returns the last step it reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lib), str(start_step), media],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    want = rng.randint(3, 25)
    last = start_step - 1
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while last - start_step + 1 < want and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.strip().isdigit():
                last = int(line)
        time.sleep(rng.uniform(0, 0.08))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return last


def _check(lib: Path, reported_step: int, ns: dict) -> tuple[int, int]:
    """Every stored item has intact vectors of its version and nothing committed-and-reported was lost."""
    with LibraryStore.open(lib, create=False) as store:
        records = list(store.items())
        ids = [r.item_id for r in records]
        keys = [r.key for r in records]
        assert len(ids) == len(set(ids)) and len(keys) == len(set(keys))
        scanned = np.concatenate([k for k, _ in store.iter_fused(batch_size=50)])
        assert sorted(scanned.tolist()) == sorted(keys)
        reported_n = (reported_step + 1) * 10  # items committed in reported batches
        for rec in records:
            j, version = int(rec.item_id.split("-")[1]), rec.metadata["version"]
            vecs, fused = ns["item_vectors"](j, version)
            np.testing.assert_array_equal(store.fused([rec.key])[0], fused)
            for m, v in vecs.items():
                np.testing.assert_array_equal(store.vectors(m, [rec.key])[0], v)
            latest_reported = max((n // ns["N_IDS"] for n in range(j, reported_n, ns["N_IDS"])), default=-1)
            assert version >= latest_reported, (rec.item_id, version, latest_reported)
        if reported_n >= ns["N_IDS"]:
            assert len(records) == ns["N_IDS"]
        st = store.stats()
        assert not any(name.endswith(".compact") for name in st["files"])
        return len(records), st["modalities"]["frames"]["file_rows"]


@pytest.mark.slow
def test_sigkill_during_commits_and_compactions_leaves_a_clean_library(
    tmp_path: Path, bigbuckbunny: Path
) -> None:
    ns: dict = {}
    exec(VECTORS, ns)
    rng = random.Random(20261122)
    lib = tmp_path / "lib"
    step = 0
    for _ in range(4):
        last = _run_until_killed(lib, step, str(bigbuckbunny), rng)
        assert last >= step  # the child did commit something this round
        _check(lib, last, ns)
        step = last + 1  # continue where the last reported batch ended (an unreported one may exist too)
    # the library stays writable and compactable after the crashes
    with LibraryStore.open(lib) as store:
        store.compact()
        st = store.stats()
        assert st["modalities"]["frames"]["file_rows"] == st["modalities"]["frames"]["live_rows"]
    _check(lib, last, ns)


def test_two_writer_processes_are_serialised(tmp_path: Path, bigbuckbunny: Path) -> None:
    """Two encode jobs on one library: appends never interleave, every item matches its version."""
    ns: dict = {}
    exec(VECTORS, ns)
    lib = tmp_path / "lib"
    LibraryStore.open(lib).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(lib), str(start), str(bigbuckbunny), str(start + 13)],
            stdout=subprocess.DEVNULL,
            env=env,
        )
        for start in (0, 120)  # same ids, different versions: both replace the same items
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    n_items, _ = _check(lib, -1, ns)
    assert n_items == ns["N_IDS"]
    with LibraryStore.open(lib) as store:
        st = store.stats()
        # 2 x 13 batches of 10 items, 16 frame rows each, all appended whole (compaction may have dropped garbage)
        assert st["modalities"]["frames"]["live_rows"] == ns["N_IDS"] * 16
        assert store.changes_since(0)[2] == 2 * 13 * 10
