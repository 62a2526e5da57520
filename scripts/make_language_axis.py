"""Write the language axis of the bundled text model (see encoders/bundled/language_axis.py).

.venv/bin/python scripts/make_language_axis.py [--per-language 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.cache import data_root  # noqa: E402

DATA = data_root()


def main() -> None:
    from encoders.bundled.language_axis import chinese_sentences, english_sentences, measure_language_axis
    from encoders.bundled.text_e5 import LANGUAGE_AXIS_ASSET, E5TextEncoder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-language", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "encoders" / "assets" / LANGUAGE_AXIS_ASSET)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    english = rng.sample(english_sentences(DATA), args.per_language)
    chinese = rng.sample(chinese_sentences(), args.per_language)
    axis = measure_language_axis(E5TextEncoder(), english, chinese)
    np.save(args.out, axis)
    print(f"wrote {args.out} from {len(english)} English and {len(chinese)} Chinese sentences")


if __name__ == "__main__":
    main()
