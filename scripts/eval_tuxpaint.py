"""Retrieval quality on the tuxpaint stamps, before and after ``Library.train_fusion``, measured with
``mmrec evaluate``'s retrieval protocols (``mmrec.evaluate.retrieval``), i.e. through
``Library.search`` and ``Library.similar`` as users query.

Protocol: all stamp PNGs, split 80/20 by seed. TRAIN stamps are encoded with their English caption as
title (text <-> frames pairs to learn from); TEST stamps carry no text at all (image only). Figures:

- text -> image (``text-to-item``): each captioned test stamp's English and zh_CN caption as the query
  (a caption shared by a stamp and its mirror image has both as right items); ranked among the test
  stamps (``*_test_gallery``) and among all stamps (``*_all_gallery``); R@1/5/10 and MRR;
- item -> item (``same-label``, labels = stamp category): P@10 and top-1 of the captioned test stamps
  (``category_P@10``, gallery all stamps, the query excluded), and the same over every stamp with the
  hubness of the top-10 lists (``same_label_all``: what the ``mmrec evaluate`` command prints).

BEFORE is the library as ``mmrec encode`` leaves it (the default fusion); AFTER is the same library
after ``train_fusion(keys=train keys)``. The encoded library is cached under ``$MMREC_CACHE/eval/``
(``~/.cache/mmrec``) and copied before each run, so training never changes what BEFORE measures. The
labels and queries files are written beside it; the printed commands reproduce the whole-library
figures with ``mmrec evaluate``.

    python scripts/eval_tuxpaint.py [--seed 0] [--epochs 30] [--mode dense] [--json OUT]
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from encoders.cache import cache_root, data_root

DATA = data_root() / "tuxpaint" / "stamps"
EVAL_ROOT = cache_root() / "eval"


@dataclass
class Stamp:
    """One stamp: its id in the library, category (top-level folder) and captions."""

    item_id: str
    path: Path
    category: str
    en: str
    zh: str


def caption_file(png: Path) -> Path | None:
    """``x.txt`` beside ``x.png``; a ``x_mirror.png`` shares the caption of ``x``."""
    for stem in (png.stem, png.stem.removesuffix("_mirror")):
        txt = png.with_name(stem + ".txt")
        if txt.is_file():
            return txt
    return None


def read_captions(txt: Path | None) -> tuple[str, str]:
    """(English first line, zh_CN translation or '')."""
    if txt is None:
        return "", ""
    lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    en = lines[0].strip() if lines else ""
    zh = next((ln.split("=", 1)[1].strip() for ln in lines if ln.startswith("zh_CN.utf8=")), "")
    return en, zh


def load_stamps(root: Path = DATA) -> list[Stamp]:
    """Every PNG stamp in sorted order."""
    out = []
    for png in sorted(root.rglob("*.png")):
        rel = png.relative_to(root)
        en, zh = read_captions(caption_file(png))
        out.append(Stamp(rel.as_posix(), png, rel.parts[0], en, zh))
    return out


def split(stamps: list[Stamp], seed: int, test_fraction: float = 0.2) -> tuple[set[str], set[str]]:
    """Random 80/20 split of stamp ids."""
    order = np.random.default_rng(seed).permutation(len(stamps))
    n_test = int(round(test_fraction * len(stamps)))
    test = {stamps[i].item_id for i in order[:n_test]}
    return {s.item_id for s in stamps} - test, test


def build_library(stamps: list[Stamp], train_ids: set[str], seed: int) -> Path:
    """Encode the stamps once (PNG-only symlink tree + manifest); reruns reuse the cached library,
    which is never trained (``main`` trains a copy)."""
    from mmrec import Library

    media = EVAL_ROOT / "tuxpaint-media"
    for s in stamps:
        link = media / s.item_id
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(s.path)
    lib_path = EVAL_ROOT / f"tuxpaint-encoded-s{seed}"
    manifest = EVAL_ROOT / f"tuxpaint-manifest-s{seed}.jsonl"
    with open(manifest, "w", encoding="utf-8") as fh:
        for s in stamps:
            row: dict[str, Any] = {"path": str(media / s.item_id), "item_id": s.item_id}
            if s.item_id in train_ids and s.en:
                row["title"] = s.en
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    t0 = time.perf_counter()
    with Library(lib_path) as lib:
        summary = lib.encode(media, metadata=manifest, workers=1, progress=False)
    print(
        f"library {lib_path}: encoded {summary.encoded}, unchanged {summary.skipped_unchanged}, "
        f"failed {summary.failed} in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    return lib_path


def write_files(stamps: list[Stamp], test: list[str], seed: int) -> tuple[Path, Path]:
    """The ``same-label`` labels (every stamp, by category) and the ``text-to-item`` queries (the
    captions of the test stamps, with their language)."""
    labels = EVAL_ROOT / f"tuxpaint-s{seed}-labels.csv"
    with open(labels, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item_id", "label"])
        writer.writerows([s.item_id, s.category] for s in stamps)
    by_id = {s.item_id: s for s in stamps}
    queries = EVAL_ROOT / f"tuxpaint-s{seed}-queries.csv"
    with open(queries, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "item_id", "language"])
        for lang in ("en", "zh"):
            writer.writerows([getattr(by_id[i], lang), i, lang] for i in test if getattr(by_id[i], lang))
    return labels, queries


class OneSearchPerText:
    """The library as the protocols see it, answering each text search once: both galleries rank
    the same full result list (embedding a query is most of the cost), so it is asked for once."""

    def __init__(self, lib: Any) -> None:
        self.store = lib.store
        self.similar = lib.similar
        seen: dict[tuple[Any, ...], Any] = {}

        @functools.wraps(lib.search)  # the protocol reads the signature (whether it has ``mode``)
        def search(text: str, k: int = 10, **options: Any) -> Any:
            key = (text, k, tuple(sorted(options.items())))
            if key not in seen:
                seen[key] = lib.search(text, k=k, **options)
            return seen[key]

        self.search = search


def measure(lib_path: Path, labels: Path, queries: Path, test: list[str], mode: str) -> dict[str, Any]:
    """Every figure of one state of the library, each from a retrieval protocol (MRR over the
    whole library, as deep as the test gallery needs)."""
    from mmrec import Library
    from mmrec.evaluate.retrieval import same_label, text_to_item

    out: dict[str, Any] = {}
    with Library(lib_path, create=False) as library:
        lib = OneSearchPerText(library)
        gallery = text_to_item(lib, queries, mode=mode, gallery=set(test))
        whole = text_to_item(lib, queries, mode=mode, depth=gallery.depth)
        for name, report in (("test_gallery", gallery), ("all_gallery", whole)):
            for lang, scores in report.per_language.items():
                recall = {f"R@{k}": round(v, 4) for k, v in scores.recall.items()}
                out[f"{lang}_{name}"] = {**recall, "MRR": round(scores.mrr, 4)}
                out[f"{lang}_queries"] = scores.queries
        test_only = same_label(lib, labels, k=10, queries=set(test))
        out["category_P@10"] = round(test_only.overall.precision, 4)
        out["category_top1"] = round(test_only.overall.top1, 4)
        every = same_label(lib, labels, k=10).to_dict()
        out["same_label_all"] = {**every["metrics"], "hubness": every["hubness"]}
        out["mode"] = whole.mode
    return out


@click.command()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "lexical"]),
    default="dense",
    show_default=True,
    help="Search mode of the text queries (dense: the figures before hybrid search).",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write results here.")
def main(seed: int, epochs: int, mode: str, json_out: Path | None) -> None:
    """Build (or reuse) the tuxpaint library, measure BEFORE, train fusion on TRAIN keys, measure AFTER."""
    import torch

    from mmrec import Library

    torch.set_num_threads(2)
    stamps = load_stamps()
    train_ids, test_ids = split(stamps, seed)
    encoded = build_library(stamps, train_ids, seed)
    by_id = {s.item_id: s for s in stamps}
    work = EVAL_ROOT / f"tuxpaint-lib-s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(encoded, work, ignore=shutil.ignore_patterns(".*.lock"))
    with Library(work, create=False) as lib:
        keys = {r.item_id: int(r.key) for r in lib.store.items() if r.key is not None}
    test = sorted(i for i in test_ids if i in keys and by_id[i].en)
    labels, queries = write_files([s for s in stamps if s.item_id in keys], test, seed)
    print(
        f"mmrec evaluate --protocol same-label --library {work} --labels {labels}\n"
        f"mmrec evaluate --protocol text-to-item --library {work} --queries {queries} --mode {mode}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    before = measure(work, labels, queries, test, mode)
    print("BEFORE", json.dumps(before), f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    with Library(work, create=False) as lib:
        train_keys = [keys[i] for i in sorted(train_ids) if i in keys]
        report = lib.train_fusion(epochs=epochs, seed=seed, keys=train_keys)
    after = measure(work, labels, queries, test, mode)
    print("AFTER", json.dumps(after), file=sys.stderr)
    result = {
        "seed": seed,
        "stamps": len(stamps),
        "train": len(train_ids),
        "test": len(test_ids),
        "test_with_caption": len(test),
        "before": before,
        "after": after,
        "training": {k: v for k, v in report.items() if k != "epochs"},
    }
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if json_out is not None:
        json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
