"""Crash-resume check: SIGKILL an encode five times at random moments, resume, count lost and duplicates.

Each round starts ``python -m pipelines.encode_job MEDIA LIBRARY`` in a child process and kills it
with SIGKILL after a random delay; a final run goes to completion. Then it verifies, against the
media folder and the library:

* lost: decodable files in the media folder with neither an item nor a failure row;
* duplicated: a path stored under two items, a key listed twice in the fused vectors, or index
  entries that do not match the items one to one.

Example::

    .venv/bin/python scripts/bench_resume.py --out /tmp/mmrec-bench-resume --files 200 --max-delay 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def child_cmd(media: Path, library: Path, batch_size: int) -> list[str]:
    return [
        sys.executable, "-m", "pipelines.encode_job", str(media), str(library),
        "--workers", "1", "--batch-size", str(batch_size), "--frames", "4", "--no-speech", "--quiet",
    ]  # fmt: skip


def kill_rounds(
    media: Path, library: Path, rounds: int, max_delay: float, batch_size: int, seed: int
) -> list[dict]:
    """Start the job ``rounds`` times and SIGKILL it after a random delay; returns what each round saw."""
    rng = random.Random(seed)
    log = []
    for r in range(rounds):
        delay = rng.uniform(2.0, max_delay)
        proc = subprocess.Popen(child_cmd(media, library, batch_size), cwd=ROOT, stdout=subprocess.PIPE)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < delay:
            time.sleep(0.05)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log.append({"round": r + 1, "delay_s": round(delay, 2), "killed": killed, "rc": proc.returncode})
    return log


def verify(media: Path, library: Path) -> dict:
    """Count lost and duplicated items (both should be zero)."""
    from mmrec.store import LibraryStore

    store = LibraryStore.open(library, create=False)
    try:
        items = list(store.items(status=None))
        paths = Counter(rec.path for rec in items if rec.path)
        ids = Counter(rec.item_id for rec in items)
        failed = {p for p, _reason, _t in store.failures()}
        on_disk = {str(p.resolve()) for p in media.rglob("*") if p.is_file() and not p.name.startswith(".")}
        fused_keys = Counter(int(k) for keys, _ in store.iter_fused() for k in keys)
        lost = sorted(on_disk - set(paths) - failed)
        index_size: int | None = None
        try:
            from mmrec.index.library_index import LibraryIndex

            index_size = len(LibraryIndex.open(store))
        except ImportError:
            index_size = None
        item_keys = Counter(int(rec.key) for rec in items if rec.status == "ok" and rec.key is not None)
        return {
            "files_on_disk": len(on_disk),
            "items": len(items),
            "failures": len(failed),
            "lost": len(lost),
            "lost_paths": lost[:10],
            "duplicate_paths": sum(1 for c in paths.values() if c > 1),
            "duplicate_item_ids": sum(1 for c in ids.values() if c > 1),
            "duplicate_fused_keys": sum(1 for c in fused_keys.values() if c > 1),
            "fused_rows_vs_items": [sum(fused_keys.values()), len(item_keys)],
            "index_size_vs_items": [index_size, len(item_keys)],
        }
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/mmrec-bench-resume"))
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-delay", type=float, default=10.0, help="kill after a uniform delay in [2, this] s")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from bench_encode import build_media

    media = args.out / "media"
    library = args.out / "library"
    n = build_media(media, args.files, seed=args.seed)
    shutil.rmtree(library, ignore_errors=True)
    log = kill_rounds(media, library, args.rounds, args.max_delay, args.batch_size, args.seed)
    final = subprocess.run(
        child_cmd(media, library, args.batch_size), cwd=ROOT, capture_output=True, text=True
    )
    if final.returncode != 0:
        sys.stderr.write(final.stderr)
        raise SystemExit(f"final run failed with exit code {final.returncode}")
    kills = sum(1 for r in log if r["killed"])
    if kills < args.rounds:
        sys.stderr.write(
            f"only {kills} of {args.rounds} runs were killed (the others finished first): "
            "use more --files or a smaller --max-delay\n"
        )
    report = {
        "media_files": n,
        "kills": kills,
        "rounds": log,
        "final_run": json.loads(final.stdout.strip().splitlines()[-1]),
        "check": verify(media, library),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
