#!/usr/bin/env python
"""Throughput of the bundled encoders on real inputs: one item at a time vs a batch, per modality.

Decoding is done once up front and not timed; preprocessing inside the encoders is timed.
Each figure is the median of ``--runs`` timed passes after one warm-up pass.

    python scripts/bench_encoders.py --device cpu --runs 3 --json bench.json
    python scripts/bench_encoders.py --device cpu --modalities frames,audio --runtime both
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.cache import data_root  # noqa: E402
from encoders.device import resolve_device  # noqa: E402

DATA = data_root()


# ---- inputs (decoded once, untimed) -------------------------------------------------------------
def stamp_frames(n: int) -> list[np.ndarray]:
    pngs = sorted((DATA / "tuxpaint" / "stamps").rglob("*.png"))
    step = max(1, len(pngs) // n)
    out = []
    for p in pngs[::step][:n]:
        with Image.open(p) as im:
            rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        out.append(np.asarray(white.convert("RGB")))
    return out


def decode_audio(path: Path, rate: int) -> np.ndarray:
    try:
        import av
    except ImportError:  # minimal GPU boxes: 16-bit WAV only, through the stdlib
        import wave

        import librosa

        with wave.open(str(path), "rb") as w:
            sr, channels = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return librosa.resample(pcm.reshape(-1, channels).mean(axis=1), orig_sr=sr, target_sr=rate)
    parts: list[np.ndarray] = []
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in c.decode(audio=0):
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(parts).astype(np.float32)


def lena_clips(n: int, seconds: float, rate: int) -> list[np.ndarray]:
    names = [
        "lena.wav",
        "lena.flac",
        "lena.mp3",
        "lena.ogg",
        "lena.opus",
        "lena.m4a",
        "lena-24.wav",
        "lena.aiff",
    ]
    waves = [
        decode_audio(DATA / "audio-lena" / name, rate)
        for name in names
        if (DATA / "audio-lena" / name).exists()
    ]
    clips = []
    for i in range(n):
        wave = waves[i % len(waves)]
        start = int((i // len(waves)) * 0.5 * rate) % max(1, wave.size - int(seconds * rate))
        clips.append(wave[start : start + int(seconds * rate)])
    return clips


def captions(n: int) -> list[str]:
    texts = []
    for txt in sorted((DATA / "tuxpaint" / "stamps").rglob("*.txt")):
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and lines[0].strip():
            texts.append(lines[0].strip())
        if len(texts) >= n:
            break
    return texts


# ---- timing -------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], runs: int, device: str) -> float:
    fn()  # warm-up: first-call allocations, cuDNN autotune, lazy imports
    times = []
    for _ in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rates(seconds: float, items: int) -> dict[str, float]:
    return {"items_per_s": round(items / seconds, 2), "ms_per_item": round(1000 * seconds / items, 2)}


def single_vs_batch(
    encode: Callable[[Sequence[Any]], object], items: list[Any], runs: int, device: str
) -> dict:
    one = median_seconds(lambda: [encode([x]) for x in items], runs, device)
    batch = median_seconds(lambda: encode(items), runs, device)
    return {"items": len(items), "single": rates(one, len(items)), "batch": rates(batch, len(items))}


def best_frame_batch(device: str, runs: int) -> dict:
    """GPU only: frames/s at several batch sizes, the best one, and peak memory."""
    from encoders.bundled.frames_effnet import EfficientNetFrameEncoder

    base = stamp_frames(64)
    per_size: dict[int, float] = {}
    peak: dict[int, float] = {}
    for size in (32, 64, 128, 256, 512):
        enc = EfficientNetFrameEncoder(device=device, batch_size=size)
        frames = (base * (size // len(base) + 1))[:size]
        torch.cuda.reset_peak_memory_stats()
        sec = median_seconds(lambda enc=enc, frames=frames: enc.encode_frames(frames), runs, device)
        per_size[size] = round(size / sec, 1)
        peak[size] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    best = max(per_size, key=lambda s: per_size[s])
    return {
        "frames_per_s_by_batch": per_size,
        "best_batch": best,
        "best_frames_per_s": per_size[best],
        "peak_mib_by_batch": peak,
    }


# ---- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--runs", type=int, default=3, help="timed passes per figure (median reported)")
    ap.add_argument("--items", type=int, default=32, help="items per pass (the batch size compared)")
    ap.add_argument("--audio-seconds", type=float, default=5.0, help="length of each audio clip")
    ap.add_argument("--modalities", default="frames,audio,text,speech")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="torch CPU threads")
    ap.add_argument(
        "--runtime",
        default="onnx",
        choices=["onnx", "torch", "both"],
        help="CPU runtime of the frame and sound CNNs (both: one row each, paired in the same run)",
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    wanted = [m.strip() for m in args.modalities.split(",") if m.strip()]
    results: dict[str, Any] = {}

    runtimes = ["onnx", "torch"] if args.runtime == "both" and device == "cpu" else [args.runtime]
    for rt in runtimes:
        suffix = f":{rt}" if len(runtimes) > 1 else ""
        if "frames" in wanted:
            from encoders.bundled.frames_effnet import EfficientNetFrameEncoder

            enc = EfficientNetFrameEncoder(device=device, batch_size=args.items, runtime=rt)
            frames = stamp_frames(args.items)
            results["frames" + suffix] = single_vs_batch(enc.encode_frames, frames, args.runs, device)
        if "audio" in wanted:
            from encoders.bundled.audio_aisfx import AisfxAudioEncoder

            aud = AisfxAudioEncoder(device=device, runtime=rt)
            clips = lena_clips(args.items, args.audio_seconds, aud.sample_rate)
            results["audio" + suffix] = single_vs_batch(aud.encode_audio, clips, args.runs, device)
            results["audio" + suffix]["clip_seconds"] = args.audio_seconds
    if "text" in wanted:
        from encoders.bundled.text_e5 import E5TextEncoder

        txt = E5TextEncoder()
        results["text"] = single_vs_batch(txt.encode_text, captions(args.items), args.runs, device)
    if "speech" in wanted:
        from encoders.bundled.speech_ct2 import FasterWhisperRecognizer

        rec = FasterWhisperRecognizer(device=device)
        wave = decode_audio(DATA / "speech" / "hello_en.wav", rec.sample_rate)
        sec = median_seconds(lambda: rec.transcribe(wave), args.runs, device)
        audio_s = wave.size / rec.sample_rate
        results["speech"] = {
            "items": 1,
            "single": rates(sec, 1),
            "audio_seconds": round(audio_s, 2),
            "realtime_factor": round(audio_s / sec, 2),
        }
    if device.startswith("cuda") and "frames" in wanted:
        results["frames_gpu"] = best_frame_batch(device, args.runs)

    report = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "cpu_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "runs": args.runs,
        "results": results,
    }
    print(f"device={device} threads={args.threads} runtime={args.runtime} runs={args.runs} (median)")
    print(
        f"{'modality':<13} {'items':>5} {'single items/s':>15} {'single ms/item':>15} {'batch items/s':>14} {'batch ms/item':>14}"
    )
    for name, r in results.items():
        if name == "frames_gpu":
            continue
        b = r.get("batch", {})
        print(
            f"{name:<13} {r['items']:>5} {r['single']['items_per_s']:>15} {r['single']['ms_per_item']:>15} "
            f"{b.get('items_per_s', '-'):>14} {b.get('ms_per_item', '-'):>14}"
        )
    if "speech" in results:
        print(f"speech realtime factor: {results['speech']['realtime_factor']}x")
    if "frames_gpu" in results:
        g = results["frames_gpu"]
        print(
            f"GPU frames/s by batch: {g['frames_per_s_by_batch']}; best batch {g['best_batch']} -> "
            f"{g['best_frames_per_s']} frames/s; peak MiB {g['peak_mib_by_batch']}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
