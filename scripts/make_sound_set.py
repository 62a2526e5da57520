#!/usr/bin/env python3
"""Build a labelled, audio-only sound set from real sounds we have offline, for same-label evaluation.

Source: tuxpaint's stamp sound effects (``~/.cache/mmrec/data/tuxpaint/stamps``, fetched by
scripts/fetch_data.py). A stamp's sound sits beside it (``animals/birds/crow.ogg``); spoken variants
(``crow_desc*.ogg`` descriptions, ``7_de.ogg``-style per-language recordings) are left out: they are
speech, not the sound of the thing. The label is the stamp category, the first two folders of the
path (``animals/birds``, ``symbols/math``, ``hobbies/music``); labels with fewer than ``--min-per-label``
clips are dropped, since a leave-one-out query needs another clip of its label.

Writes ``OUT/clips/<label>/<name>.ogg`` (copies, no metadata: the clips are audio-only, with no title
to give the label away) and ``OUT/labels.csv`` (``item_id,label``; the item ids are what
``mmrec encode OUT/clips`` assigns: the path under ``clips/``). Other packaged sounds in the data
cache (one music track, one speech clip, the same Lena recording in many formats) form no label
of two distinct sounds, so they are not used.

    python scripts/make_sound_set.py OUT [--min-per-label 2] [--depth 2]
    mmrec encode OUT/clips --library LIB
    mmrec evaluate --protocol same-label --library LIB --labels OUT/labels.csv
"""

from __future__ import annotations

import csv
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_data import data_dir  # noqa: E402

SOUND_SUFFIXES = (".ogg", ".wav")
# name_desc.ogg, name_desc_fr.ogg (spoken descriptions) and name_de.ogg, name_en_GB.ogg, name_zh_tw.ogg
# (a word spoken in one language)
SPOKEN = re.compile(r"(_desc(_[a-z]{2,3}(_[A-Za-z]{2,4})?)?|_[a-z]{2,3}(_[A-Za-z]{2,4})?)$")


def sound_files(stamps: Path) -> list[Path]:
    """The stamps' sound effects (spoken variants left out), in sorted order."""
    return sorted(
        p for p in stamps.rglob("*") if p.suffix.lower() in SOUND_SUFFIXES and not SPOKEN.search(p.stem)
    )


def label_of(rel: Path, depth: int) -> str:
    """The stamp category: the first ``depth`` folders (fewer when the file sits higher up)."""
    return "/".join(rel.parts[: min(depth, len(rel.parts) - 1)])


def build(out: Path, min_per_label: int = 2, depth: int = 2) -> list[tuple[str, str]]:
    """Copy the labelled clips into ``out/clips`` and write ``out/labels.csv``; returns the rows."""
    stamps = data_dir() / "tuxpaint" / "stamps"
    if not stamps.is_dir():
        raise click.ClickException(f"{stamps} is missing: run scripts/fetch_data.py first")
    files = [(p, label_of(p.relative_to(stamps), depth)) for p in sound_files(stamps)]
    counts = Counter(label for _, label in files)
    kept = [(p, label) for p, label in files if counts[label] >= min_per_label]
    clips = out / "clips"
    if clips.exists():
        shutil.rmtree(clips)
    rows: list[tuple[str, str]] = []
    for path, label in kept:
        item_id = f"{label}/{path.name}"
        target = clips / item_id
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        rows.append((item_id, label))
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item_id", "label"])
        writer.writerows(rows)
    return rows


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--min-per-label", default=2, show_default=True, help="drop labels with fewer clips")
@click.option("--depth", default=2, show_default=True, help="folders of the stamp path that make the label")
def main(out: Path, min_per_label: int, depth: int) -> None:
    """Write OUT/clips and OUT/labels.csv."""
    out.mkdir(parents=True, exist_ok=True)
    rows = build(out, min_per_label, depth)
    labels = Counter(label for _, label in rows)
    print(f"[sound-set] {len(rows)} clips, {len(labels)} labels in {out}")
    for label, n in sorted(labels.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:4d}  {label}")


if __name__ == "__main__":
    main()
