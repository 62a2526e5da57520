"""SIGKILL mmrec's writers at random moments on a real small library and verify nothing is lost or doubled.

Each trial starts one real ``mmrec`` process (``encode``, ``ingest``, ``train-fusion``, ``reindex``, or
``serve`` under write load through ``POST /api/events``), kills it with SIGKILL at a random moment
(uniform over the time the same command took unkilled), runs the same work again to completion and
verifies:

* exactly once: the catalog holds one item per media file now in the folder (none lost, none twice),
  every event sent is stored once (the server's acknowledged ones included);
* catalog = fused vectors = index: every ok item has its own fused row (no row shared), and the
  index (saved version caught up with the catalog's change log, as readers do) holds exactly them;
* fusion: the catalog's version = the manifest's = every item's, and ``fusion/`` holds only that
  checkpoint (a killed run's orphan is gone after the rerun);
* ``mmrec check`` (``mmrec.check.check_library``, the same code, in this process) finds nothing.

Then a disk-full trial: the library on a small tmpfs (``mount -t tmpfs``; without permission to
mount, ``RLIMIT_FSIZE`` instead) is filled by ``encode``/``train-fusion``/``ingest``: each must exit
with one ``error:`` line (no traceback) and leave the library consistent; after the space returns
the rerun completes and the library verifies.

    python scripts/kill_trials.py --trials 50 --seed 0 --json results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
OPS = ("encode", "ingest", "train-fusion", "reindex", "serve")


@dataclass
class Trial:
    n: int
    op: str
    kill_after_s: float
    killed: bool
    rerun_s: float
    ok: bool
    detail: str = ""
    acked_events: int = 0


@dataclass
class Summary:
    trials: list[Trial] = field(default_factory=list)
    disk_full: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        killed = [t for t in self.trials if t.killed]
        return {
            "trials": len(self.trials),
            "killed": len(killed),
            "failed": [asdict(t) for t in self.trials if not t.ok],
            "by_op": {op: sum(1 for t in killed if t.op == op) for op in OPS},
            "disk_full": self.disk_full,
            "all": [asdict(t) for t in self.trials],
        }


def mmrec_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmrec.cli.main", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def run(args: list[str], timeout: float = 600, preexec: object = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,  # type: ignore[arg-type]
    )


def run_killed(args: list[str], kill_after: float) -> tuple[bool, float]:
    """Start ``args``, SIGKILL it after ``kill_after`` s; (killed before it finished, seconds it ran)."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=kill_after)
        return False, time.monotonic() - started
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True, time.monotonic() - started


# ============================================================================ the library and its inputs
class Bench:
    """A real small library (captioned tuxpaint stamps, bundled models) and the inputs trials feed it."""

    def __init__(self, work: Path, rng: random.Random, n_pool: int = 16) -> None:
        self.work = work
        self.rng = rng
        self.lib = work / "library"
        self.media = work / "media"
        self.pool = work / "pool"
        self.events_sent: set[tuple[str, str, str, float]] = set()
        self.ts = 1_700_000_000.0
        stamps = Path(os.environ.get("MMREC_STAMPS", Path.home() / ".cache/mmrec/data/tuxpaint/stamps"))
        pngs = [p for p in sorted(stamps.rglob("*.png")) if p.with_suffix(".txt").is_file()][:n_pool]
        self.pool.mkdir(parents=True, exist_ok=True)
        self.media.mkdir(parents=True, exist_ok=True)
        for png in pngs:
            dest = self.pool / f"{png.parent.name}-{png.name}"
            shutil.copyfile(png, dest)
            caption = png.with_suffix(".txt").read_text(encoding="utf-8").splitlines()[0].strip()
            (self.pool / f"{dest.name}.json").write_text(json.dumps({"title": caption}), encoding="utf-8")
        for p in sorted(self.pool.glob("*.png"))[:10]:
            self.add_file(p.name)

    def add_file(self, name: str) -> None:
        shutil.copyfile(self.pool / name, self.media / name)
        shutil.copyfile(self.pool / f"{name}.json", self.media / f"{name}.json")

    def remove_file(self, name: str) -> None:
        (self.media / name).unlink()
        (self.media / f"{name}.json").unlink()

    def change_media(self) -> None:
        """Two files in, one out: the next encode adds, and deletes."""
        present = sorted(p.name for p in self.media.glob("*.png"))
        absent = sorted(p.name for p in self.pool.glob("*.png") if p.name not in present)
        for name in self.rng.sample(absent, min(2, len(absent))):
            self.add_file(name)
        if len(present) > 6:
            self.remove_file(self.rng.choice(present))

    def expected_ids(self) -> set[str]:
        return {p.name for p in self.media.glob("*.png")}

    def event_rows(self, n: int) -> list[dict[str, object]]:
        ids = sorted(self.current_ids())
        rows = []
        for _ in range(n):
            self.ts += 1.0
            rows.append(
                {
                    "user_id": f"u{self.rng.randrange(8)}",
                    "item_id": self.rng.choice(ids),
                    "event": self.rng.choice(["view", "like", "skip"]),
                    "timestamp": self.ts,
                }
            )
        return rows

    def current_ids(self) -> set[str]:
        with sqlite3.connect(self.lib / "catalog.sqlite") as conn:
            return {r[0] for r in conn.execute("SELECT item_id FROM items WHERE status='ok'")}

    def remember(self, rows: list[dict[str, object]]) -> None:
        for r in rows:
            self.events_sent.add(
                (str(r["user_id"]), str(r["item_id"]), str(r["event"]), float(r["timestamp"]))
            )  # type: ignore[arg-type]

    def write_csv(self, rows: list[dict[str, object]], path: Path) -> Path:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["user_id", "item_id", "event", "timestamp"])
            w.writeheader()
            w.writerows(rows)
        return path


# ============================================================================ verification
def verify(bench: Bench, lib: Path | None = None) -> str:
    """'' when the library is consistent, else what is wrong."""
    from mmrec.check import check_library
    from mmrec.index.library_index import LibraryIndex
    from mmrec.index.vector_index import VectorIndex
    from mmrec.store import LibraryStore

    lib = lib or bench.lib
    problems: list[str] = []
    with sqlite3.connect(lib / "catalog.sqlite") as conn:
        ids = [r[0] for r in conn.execute("SELECT item_id FROM items WHERE status='ok'")]
        rows = [r[0] for r in conn.execute("SELECT row_start FROM slots WHERE modality='fused'")]
        n_ok = conn.execute(
            "SELECT COUNT(*) FROM items i JOIN slots s ON s.key=i.key AND s.modality='fused' WHERE i.status='ok'"
        ).fetchone()[0]
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        versions = {r[0] for r in conn.execute("SELECT DISTINCT fusion_version FROM items WHERE status='ok'")}
    if set(ids) != bench.expected_ids() or len(ids) != len(set(ids)):
        lost = bench.expected_ids() - set(ids)
        extra = set(ids) - bench.expected_ids()
        problems.append(f"items: lost {sorted(lost)[:3]}, unexpected {sorted(extra)[:3]}")
    if len(rows) != len(set(rows)) or n_ok != len(ids) or len(rows) != len(ids):
        problems.append(f"fused rows: {len(rows)} slots, {len(set(rows))} distinct, {len(ids)} ok items")
    manifest = json.loads((lib / "manifest.json").read_text())
    version = meta.get("fusion_version")
    if version is not None:
        if manifest.get("fusion_version") != version or versions != {version}:
            problems.append(
                f"fusion: catalog {version}, manifest {manifest.get('fusion_version')}, items {versions}"
            )
        pts = sorted(p.name for p in (lib / "fusion").glob("*.pt"))
        if version != "default" and pts != [f"{version}.pt"]:
            problems.append(f"fusion folder: {pts}")
    store = LibraryStore.open(lib, create=False)
    try:
        index = LibraryIndex(store, VectorIndex.load(lib / "index"))
        index.catch_up()
        keys = sorted(int(k) for k in store.iter_fused_keys()) if hasattr(store, "iter_fused_keys") else None
        if keys is None:
            keys = sorted(int(k) for batch, _ in store.iter_fused() for k in batch)
        assert index.index is not None
        if list(index.index.ids()) != keys:
            problems.append(f"index: {len(index)} ids, catalog {len(keys)} fused keys")
    except Exception as exc:  # report, then go on to the next trial
        problems.append(f"index: {exc}")
    finally:
        store.close()
    if (lib / "events.sqlite").exists():
        with sqlite3.connect(lib / "events.sqlite") as conn:
            stored = conn.execute("SELECT user_id, item_id, event, timestamp FROM events").fetchall()
        got = {(u, i, e, float(t)) for u, i, e, t in stored}
        if len(stored) != len(got) or got != bench.events_sent:
            problems.append(
                f"events: {len(stored)} stored ({len(got)} distinct), {len(bench.events_sent)} sent, "
                f"missing {len(bench.events_sent - got)}"
            )
    report = check_library(lib)
    if not report.ok:
        problems.append("check: " + "; ".join(f"{p.code} {p.message}" for p in report.remaining))
    return " | ".join(problems)


# ============================================================================ operations
class Ops:
    def __init__(self, bench: Bench, rng: random.Random) -> None:
        self.bench = bench
        self.rng = rng
        self.durations: dict[str, float] = {}

    def command(self, op: str) -> list[str]:
        lib = str(self.bench.lib)
        if op == "encode":
            return mmrec_cmd("encode", str(self.bench.media), "--library", lib, "--workers", "1", "--json")
        if op == "ingest":
            rows = self.bench.event_rows(300)
            self.bench.remember(rows)
            path = self.bench.write_csv(rows, self.bench.work / f"events-{int(self.bench.ts)}.csv")
            self._last_csv = path
            return mmrec_cmd("ingest", str(path), "--library", lib, "--json")
        if op == "train-fusion":
            return mmrec_cmd("train-fusion", "--library", lib, "--epochs", "2", "--json")
        if op == "reindex":
            return mmrec_cmd("reindex", "--library", lib, "--json")
        raise ValueError(op)

    def prepare(self, op: str) -> None:
        if op == "encode":
            self.bench.change_media()

    def calibrate(self, op: str) -> None:
        """Run the op once unkilled: its duration bounds the random kill moment."""
        self.prepare(op)
        cmd = self.command(op)
        t = time.monotonic()
        res = run(cmd)
        self.durations[op] = time.monotonic() - t
        if res.returncode != 0:
            raise SystemExit(f"calibration of {op} failed: {res.stderr[-2000:]}")

    def trial(self, n: int, op: str) -> Trial:
        if op == "serve":
            return self.serve_trial(n)
        self.prepare(op)
        cmd = self.command(op)
        kill_after = self.rng.uniform(0.05, 1.0) * self.durations[op]
        killed, _ = run_killed(cmd, kill_after)
        t = time.monotonic()
        res = run(cmd)  # the same work again, to completion
        rerun = time.monotonic() - t
        if res.returncode != 0:
            return Trial(n, op, kill_after, killed, rerun, False, f"rerun failed: {res.stderr[-800:]}")
        problem = verify(self.bench)
        return Trial(n, op, kill_after, killed, rerun, not problem, problem)

    def serve_trial(self, n: int) -> Trial:
        """``mmrec serve`` under POST /api/events load from two threads, killed at a random moment."""
        port = free_port()
        proc = subprocess.Popen(
            mmrec_cmd("serve", "--library", str(self.bench.lib), "--port", str(port), "--no-access-log"),
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        sent: list[list[dict[str, object]]] = []
        acked = [0]
        lock = threading.Lock()
        stop = threading.Event()

        def writer() -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                while not stop.is_set():
                    with lock:
                        rows = self.bench.event_rows(20)
                        self.bench.remember(rows)
                        sent.append(rows)
                    try:
                        r = client.post("/api/events", json=rows)
                        if r.status_code == 200:
                            with lock:
                                acked[0] += len(rows)
                    except httpx.HTTPError:
                        return

        threads = [threading.Thread(target=writer) for _ in range(2)]
        for th in threads:
            th.start()
        kill_after = self.rng.uniform(0.2, 4.0)
        time.sleep(kill_after)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for th in threads:
            th.join()
        # the rerun: every row sent goes in again (what a client retries), through the same call
        t = time.monotonic()
        from mmrec import Library

        with Library(self.bench.lib, create=False, device="cpu") as lib:
            for rows in sent:
                lib.add_events(rows)
        rerun = time.monotonic() - t
        problem = verify(self.bench)
        return Trial(n, "serve", kill_after, killed, rerun, not problem, problem, acked_events=acked[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================ disk full
def disk_full(bench: Bench, ops: Ops) -> list[dict[str, object]]:
    """Encode / train-fusion / ingest into a library on a full tmpfs: one clear error, consistent after."""
    out: list[dict[str, object]] = []
    mnt = bench.work / "small"
    mnt.mkdir(exist_ok=True)
    size = sum(f.stat().st_size for f in bench.lib.rglob("*") if f.is_file())
    use_mount = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size + (64 << 20)}", "tmpfs", str(mnt)],
            capture_output=True,
        ).returncode
        == 0
    )
    small_lib = mnt / "library"
    shutil.copytree(bench.lib, small_lib)
    try:
        for op in ("encode", "train-fusion", "ingest"):
            ops.prepare(op)
            original = bench.lib
            bench.lib = small_lib
            try:
                cmd = ops.command(op)
            finally:
                bench.lib = original
            if use_mount:
                filler = mnt / "filler"
                free = shutil.disk_usage(mnt).free
                with open(filler, "wb") as fh:  # leave 96 KiB: the op runs out part-way
                    fh.write(b"\0" * max(0, free - (96 << 10)))
                res = run(cmd)
            else:
                limit = max(f.stat().st_size for f in small_lib.rglob("*") if f.is_file()) + (4 << 10)

                def preexec(limit: int = limit) -> None:
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

                res = run(cmd, preexec=preexec)
            stderr = res.stderr
            clear = res.returncode != 0 and "Traceback" not in stderr and "error:" in stderr
            consistent = verify_partial(small_lib)  # still full
            if use_mount:
                (mnt / "filler").unlink()
            again = run(cmd)
            after = (
                verify(bench, small_lib) if again.returncode == 0 else f"rerun failed: {again.stderr[-500:]}"
            )
            out.append(
                {
                    "op": op,
                    "exit": res.returncode,
                    "error_line": next(
                        (ln for ln in stderr.splitlines() if ln.startswith("error:")), stderr[-300:]
                    ),
                    "clear_error": clear,
                    "consistent_while_full": consistent,
                    "after_space_returns": after or "ok",
                    "method": "tmpfs" if use_mount else "RLIMIT_FSIZE",
                }
            )
        shutil.rmtree(bench.lib)
        shutil.copytree(small_lib, bench.lib)
    finally:
        if use_mount:
            subprocess.run(["umount", str(mnt)], capture_output=True)
    return out


def verify_partial(lib: Path) -> str:
    """While the disk is full: the library still reads and ``mmrec check`` finds nothing wrong."""
    from mmrec.check import check_library

    report = check_library(lib)
    return "ok" if report.ok else "; ".join(f"{p.code} {p.message}" for p in report.remaining)


# ============================================================================ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of " + ",".join(OPS))
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temp folder, removed)")
    ap.add_argument("--no-disk-full", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="mmrec-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(work, rng)
    ops = Ops(bench, rng)
    started = time.monotonic()
    res = run(mmrec_cmd("encode", str(bench.media), "--library", str(bench.lib), "--workers", "1", "--json"))
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    chosen = [op for op in args.ops.split(",") if op]
    for op in chosen:
        if op != "serve":
            ops.calibrate(op)
    base = verify(bench)
    if base:
        raise SystemExit(f"the library is inconsistent before any kill: {base}")
    summary = Summary()
    schedule = [chosen[i % len(chosen)] for i in range(args.trials)]
    rng.shuffle(schedule)
    for n, op in enumerate(schedule, 1):
        trial = ops.trial(n, op)
        summary.trials.append(trial)
        state = "ok" if trial.ok else "FAIL " + trial.detail
        print(
            f"[{n}/{len(schedule)}] {op:12s} kill at {trial.kill_after_s:5.1f}s "
            f"{'killed' if trial.killed else 'finished first'}; rerun {trial.rerun_s:5.1f}s: {state}",
            flush=True,
        )
    if not args.no_disk_full:
        summary.disk_full = disk_full(bench, ops)
        for row in summary.disk_full:
            print("disk full:", json.dumps(row), flush=True)
    result = summary.to_dict()
    result["seconds"] = round(time.monotonic() - started, 1)
    result["command"] = " ".join(sys.argv)
    print(
        f"{result['killed']} of {result['trials']} trials killed mid-run "
        f"({', '.join(f'{k} {v}' for k, v in result['by_op'].items())}); "  # type: ignore[union-attr]
        f"{len(result['failed'])} inconsistent; {result['seconds']} s",  # type: ignore[arg-type]
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    disk_ok = all(
        r["clear_error"] and r["consistent_while_full"] == "ok" and r["after_space_returns"] == "ok"
        for r in summary.disk_full
    )
    sys.exit(0 if not result["failed"] and disk_ok else 1)


if __name__ == "__main__":
    main()
