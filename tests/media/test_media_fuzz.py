"""Fuzzed media: mutated copies of every real container through probe and decode_media, guarded.

The short, derandomized run of ``scripts/fuzz_media.py`` (the long run is the script), plus the
regression tests for what fuzzing and the hardening issue found, each on a mutant derived here
from the real data: a header claiming 2^31 frames, a 20000x20000 PNG, a task object's file name.
"""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings

from encoders.media import (
    IMAGE_MAX_PIXELS,
    DecodeSpec,
    DecodeTimeoutError,
    ImageTooLargeError,
    decode_media,
    load_image,
    probe,
    run_guarded,
    sample_frames,
)

ROOT = Path(__file__).resolve().parents[2]


def _load_fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_media", ROOT / "scripts" / "fuzz_media.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_media"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


fz = _load_fuzz()


@pytest.fixture(scope="module")
def seeds(data_dir: Path, media_tmp: Path) -> dict[str, bytes]:
    return {name: p.read_bytes() for name, p in fz.make_seeds(data_dir, media_tmp / "fuzz-seeds").items()}


@pytest.fixture(scope="module")
def mutant_dir(media_tmp: Path) -> Path:
    path = media_tmp / "fuzz mutants"
    path.mkdir()
    return path


SEED_NAMES = sorted(["bikes.mp4", "bigbuckbunny.mp4", "Vibe_Ace.ogg", "badger.png", "queen.png"])
SEED_NAMES += sorted(fz.AUDIO_SEEDS) + [
    "badger.jpg",
    "badger.gif",
    "badger.tiff",
    "badger.webp",
    "badger.bmp",
]


@settings(
    max_examples=80,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutant=fz.mutants(SEED_NAMES))
def test_mutants_fail_typed_and_named_or_decode_sanely(
    mutant: fz.Mutant, seeds: dict[str, bytes], mutant_dir: Path
) -> None:
    path = mutant_dir / f"mutant {mutant.source}"
    path.write_bytes(mutant.build(seeds))
    out = fz.run_one(path, timeout_s=60.0)
    assert not out.hung, f"{mutant}: decoder hung"
    assert out.violations == [], f"{mutant}: {out.violations}"


def test_seed_set_covers_every_container(seeds: dict[str, bytes]) -> None:
    """The fuzz corpus really holds each container (magic bytes), not just files with those names."""
    magic = {
        "bikes.mp4": (4, b"ftyp"),
        "lena.wav": (0, b"RIFF"),
        "lena.ogg": (0, b"OggS"),
        "lena.opus": (0, b"OggS"),
        "lena.flac": (0, b"fLaC"),
        "lena.webm": (0, b"\x1a\x45\xdf\xa3"),
        "lena.caf": (0, b"caff"),
        "lena.aiff": (0, b"FORM"),
        "lena.m4a": (4, b"ftyp"),
        "badger.png": (0, b"\x89PNG"),
        "badger.jpg": (0, b"\xff\xd8\xff"),
        "badger.gif": (0, b"GIF8"),
        "badger.tiff": (0, b"II*\x00"),
        "badger.webp": (8, b"WEBP"),
        "badger.bmp": (0, b"BM"),
    }
    for name, (offset, sig) in magic.items():
        assert seeds[name][offset : offset + len(sig)] == sig, name
    assert set(SEED_NAMES) == set(seeds)


# -- a header that claims 2^31 frames ---------------------------------------------------------


def _box(data: bytes, kind: bytes) -> int:
    """Offset of the first MP4 box of that type (walks moov/trak/mdia/minf/stbl)."""
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}

    def walk(start: int, end: int) -> int | None:
        off = start
        while off + 8 <= end:
            size, typ = struct.unpack(">I4s", data[off : off + 8])
            if typ == kind:
                return off
            if typ in containers:
                found = walk(off + 8, off + size)
                if found is not None:
                    return found
            off += size if size >= 8 else end
        return None

    found = walk(0, len(data))
    assert found is not None, kind
    return found


@pytest.fixture(scope="module")
def claims_2_31_frames(media_tmp: Path, bikes: Path) -> Path:
    """bikes.mp4 (250 frames) with its one stts entry's sample count patched to 2^31."""
    data = bytearray(bikes.read_bytes())
    stts = _box(bytes(data), b"stts")
    assert struct.unpack(">II", data[stts + 12 : stts + 20]) == (1, 250)  # one entry of 250 frames
    struct.pack_into(">I", data, stts + 16, 2**31)
    path = media_tmp / "claims 2^31 frames.mp4"
    path.write_bytes(bytes(data))
    return path


def test_claimed_2_31_frames_is_corrected_in_probe(claims_2_31_frames: Path) -> None:
    info = probe(claims_2_31_frames)
    (video,) = [s for s in info.streams if s.type == "video"]
    assert video.frames == 250 and info.header_suspect
    assert any("header claims 2147483648 video frames" in w for w in info.warnings)


def test_claimed_2_31_frames_decodes_instead_of_aborting(claims_2_31_frames: Path, bikes: Path) -> None:
    """decord used to abort with std::bad_alloc on this file; now PyAV reads the real 250 frames."""
    spec = DecodeSpec(frame_count=4, frame_max_side=64)
    media = run_guarded(decode_media, claims_2_31_frames, spec, timeout_s=120)
    good = sample_frames(bikes, count=4, max_side=64, reader="pyav")
    assert media.frames is not None and media.frames.reader == "pyav"
    assert media.frames.times_s.tolist() == good.times_s.tolist()  # the same 4 of 250, not of 2^31
    assert all(f.shape == good.frames[0].shape for f in media.frames.frames)


def test_guard_names_the_file_of_a_task_object(bikes: Path) -> None:
    """run_guarded(decode_task, task) used to label a crash or hang '<pipelines.decode.decode_task>'."""
    from pipelines.decode import DecodeTask, decode_task

    task = DecodeTask(path=str(bikes), spec=DecodeSpec(frame_count=16))
    with pytest.raises(DecodeTimeoutError) as info:
        run_guarded(decode_task, task, timeout_s=0.01)  # no child starts and decodes in 10 ms
    assert info.value.path == str(bikes) and str(info.value).startswith(f"{bikes}: ")


@pytest.fixture(scope="module")
def claims_10_10_seconds(media_tmp: Path, bikes: Path) -> Path:
    """bikes.mp4 remuxed to Matroska by PyAV (no frame count in the header), its Segment Duration
    patched to 10^10 s: decord computed duration x rate frames and aborted with std::bad_alloc."""
    import av

    path = media_tmp / "claims 10^10 s.mkv"
    with av.open(str(bikes)) as src, av.open(str(path), "w", format="matroska") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration element, 8-byte float, in milliseconds
    assert at > 0 and 9.9e3 < struct.unpack(">d", data[at + 3 : at + 11])[0] < 10.1e3
    struct.pack_into(">d", data, at + 3, 1e13)
    path.write_bytes(bytes(data))
    return path


def test_claimed_10_10_seconds_is_measured_and_decodes(claims_10_10_seconds: Path) -> None:
    info = probe(claims_10_10_seconds)
    assert info.duration_s == pytest.approx(10.0, abs=0.1) and info.header_suspect
    assert any("more than a" in w and "byte file can hold" in w for w in info.warnings)
    media = run_guarded(decode_media, claims_10_10_seconds, DecodeSpec(frame_count=4, frame_max_side=64))
    assert media.frames is not None and media.frames.reader == "pyav" and len(media.frames.frames) == 4
    assert media.frames.times_s.min() >= 0.0 and media.frames.times_s.max() < 10.0


# -- a 20000 x 20000 PNG ----------------------------------------------------------------------


def _one_colour_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of one colour, streamed row by row through zlib.

    Pillow would need the whole width x height bytes in memory (400 MB for 20000 x 20000) to write
    it; the file itself is about 100 KB.
    """
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then all-black pixels
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def huge_png(media_tmp: Path) -> Path:
    return _one_colour_png(media_tmp / "huge 20000x20000.png", 20000, 20000)


def test_huge_png_is_a_real_png(huge_png: Path) -> None:
    """Pillow reads the header and verifies every chunk's CRC (verify() decodes no pixels)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image.MAX_IMAGE_PIXELS, old = None, Image.MAX_IMAGE_PIXELS
        try:
            with Image.open(huge_png) as im:
                assert (im.format, im.mode, im.size) == ("PNG", "1", (20000, 20000))
                im.verify()
        finally:
            Image.MAX_IMAGE_PIXELS = old
    assert huge_png.stat().st_size < 1_000_000


@pytest.mark.parametrize("call", ["probe", "load_image", "decode_media"])
def test_huge_png_is_too_large_not_undecodable(huge_png: Path, call: str) -> None:
    fn = {"probe": probe, "load_image": load_image, "decode_media": decode_media}[call]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning (or any other) may leak
        with pytest.raises(ImageTooLargeError) as info:
            fn(huge_png)
    msg = str(info.value)
    assert msg.startswith(f"{huge_png}: image too large to decode: 20000x20000 = 400,000,000 pixels")
    assert f"limit of {IMAGE_MAX_PIXELS:,} pixels" in msg and "no decodable" not in msg
    assert info.value.pixels == 400_000_000 and info.value.limit == IMAGE_MAX_PIXELS


def test_huge_png_through_the_guard_keeps_type_and_numbers(huge_png: Path) -> None:
    with pytest.raises(ImageTooLargeError) as info:
        run_guarded(decode_media, huge_png, timeout_s=60)
    assert info.value.pixels == 400_000_000 and info.value.path == str(huge_png)


def test_image_between_pillow_warning_and_error_is_refused_by_our_limit(media_tmp: Path) -> None:
    """12000 x 9000 = 108 MP: Pillow only warns (bomb warning above 89.5 MP); our limit refuses it."""
    path = _one_colour_png(media_tmp / "108mp.png", 12000, 9000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLargeError, match="12000x9000 = 108,000,000 pixels"):
            probe(path)
        with pytest.raises(ImageTooLargeError):
            load_image(path)


def test_huge_png_costs_no_big_allocation(huge_png: Path) -> None:
    """Refused from the header: a fresh interpreter's peak memory (VmHWM, not inherited like
    ru_maxrss) stays far below the 400 MB the pixels would take."""
    code = (
        "import sys\n"
        "from encoders.media import decode_media, ImageTooLargeError\n"
        "try:\n    decode_media(sys.argv[1])\nexcept ImageTooLargeError:\n    pass\n"
        "print(next(ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(huge_png)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    peak_mb = int(out.stdout.strip()) / 1024
    assert peak_mb < 300, peak_mb
    assert out.stderr == ""
