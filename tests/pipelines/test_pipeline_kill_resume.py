"""SIGKILL an encode child mid-run, resume it, and check every file is stored exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from mmrec.index.library_index import LibraryIndex
from mmrec.store import LibraryStore
from pipelines.encode_job import run_encode

ROOT = Path(__file__).resolve().parents[2]


def _committed(library: Path) -> int:
    try:
        with LibraryStore.open(library, create=False) as store:
            return sum(1 for _ in store.items())
    except Exception:  # not created yet, or mid-creation
        return 0


def test_sigkill_then_resume_is_exactly_once(tmp_path: Path, stamps_dir: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    pngs = sorted((stamps_dir / "animals").rglob("*.png"))[:12]
    for i, p in enumerate(pngs):
        shutil.copy(p, media / f"{i:02d}_{p.name}")
    library = tmp_path / "library"
    cmd = [sys.executable, "-m", "pipelines.encode_job", str(media), str(library), "--workers", "1",
           "--batch-size", "2", "--frames", "4", "--no-speech", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while proc.poll() is None and _committed(library) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, (
        f"child ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = _committed(library)
    assert 1 <= partial < len(pngs)

    summary = run_encode(media, library, workers=1, batch_size=4, frame_count=4, speech=False, progress=False)
    assert summary.failed == 0 and summary.index == "synced"
    assert summary.encoded + summary.skipped_unchanged == len(pngs)
    assert summary.skipped_unchanged >= partial
    with LibraryStore.open(library, create=False) as store:
        items = list(store.items())
        paths = Counter(r.path for r in items)
        assert set(paths) == {str(p.resolve()) for p in media.iterdir()}
        assert max(paths.values()) == 1
        keys = [int(k) for batch, _ in store.iter_fused() for k in batch]
        assert sorted(keys) == sorted(r.key for r in items)
        index = LibraryIndex.open(store)
        assert len(index) == len(items)
