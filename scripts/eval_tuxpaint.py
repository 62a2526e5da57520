"""Retrieval quality on the tuxpaint stamps, before and after ``Library.train_fusion``.

Protocol: all stamp PNGs, split 80/20 by seed. TRAIN stamps are encoded with their English caption as
title (text <-> frames pairs to learn from); TEST stamps carry no text at all (image only). Metrics
are computed on TEST stamps only:

- text -> image Recall@1/5/10: each test stamp's English (then zh_CN) caption as the query, gallery
  the test stamps (and, separately, all stamps);
- item -> item same-category precision@10 over test items (gallery all items, query excluded).

BEFORE uses the default (untrained) fusion, fused in memory from the stored modality vectors;
AFTER uses the library's stored vectors after ``train_fusion(keys=train keys)``, so the re-fuse path
is what gets measured. The built library is cached under ``$MMREC_CACHE/eval/`` (``~/.cache/mmrec``).

    python scripts/eval_tuxpaint.py [--seed 0] [--epochs 30] [--json OUT]
"""

from __future__ import annotations

import json
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
KS = (1, 5, 10)


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
    """Encode the stamps once (PNG-only symlink tree + manifest); reruns reuse the cached library."""
    from mmrec import Library

    media = EVAL_ROOT / "tuxpaint-media"
    for s in stamps:
        link = media / s.item_id
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(s.path)
    lib_path = EVAL_ROOT / f"tuxpaint-lib-s{seed}"
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


def recall_at(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Recall@k for one relevant item per query (its column in ``scores``); ties count against."""
    target_scores = scores[np.arange(len(targets)), targets]
    rank = (scores >= target_scores[:, None]).sum(axis=1) - 1
    return {f"R@{k}": round(float(np.mean(rank < k)), 4) for k in KS}


def category_precision(
    query_vecs: np.ndarray, query_keys: np.ndarray, gallery: np.ndarray, gallery_keys: np.ndarray, cats: dict
) -> float:
    """Mean share of same-category items among each query's 10 nearest (query itself excluded)."""
    scores = query_vecs @ gallery.T
    scores[query_keys[:, None] == gallery_keys[None, :]] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :10]
    hits = [
        np.mean([cats[int(gallery_keys[j])] == cats[int(q)] for j in row])
        for q, row in zip(query_keys, top, strict=True)
    ]
    return round(float(np.mean(hits)), 4)


def fused_in_memory(lib: Any, fusion: Any, keys: np.ndarray) -> np.ndarray:
    """Fuse items from their stored modality vectors with a given fusion (no encoder runs)."""
    items: list[dict[str, np.ndarray]] = [{} for _ in keys]
    for m in fusion.modalities:
        for i, v in enumerate(lib.store.vectors(m, [int(k) for k in keys])):
            if v is not None:
                items[i][m] = v
    fused, _ = fusion.fuse(items)
    return fused


def evaluate(
    lib: Any,
    fusion: Any,
    stamps: dict[str, Stamp],
    keys: dict[str, int],
    test: list[str],
    fused: np.ndarray,
    all_keys: np.ndarray,
) -> dict[str, Any]:
    """All metrics for one fusion; ``fused`` rows follow ``all_keys``."""
    row_of = {int(k): i for i, k in enumerate(all_keys)}
    test_keys = np.array([keys[i] for i in test])
    test_rows = np.array([row_of[int(k)] for k in test_keys])
    out: dict[str, Any] = {}
    for lang in ("en", "zh"):
        ids = [i for i in test if getattr(stamps[i], lang)]
        queries = np.stack([lib.text_query_vector(getattr(stamps[i], lang), fusion) for i in ids])
        rows = np.array([row_of[keys[i]] for i in ids])
        # gallery: test stamps
        pos_in_test = {int(r): j for j, r in enumerate(test_rows)}
        out[f"{lang}_test_gallery"] = recall_at(
            queries @ fused[test_rows].T, np.array([pos_in_test[int(r)] for r in rows])
        )
        out[f"{lang}_all_gallery"] = recall_at(queries @ fused.T, rows)
        out[f"{lang}_queries"] = len(ids)
    cats = {keys[s.item_id]: s.category for s in stamps.values() if s.item_id in keys}
    out["category_P@10"] = category_precision(fused[test_rows], test_keys, fused, all_keys, cats)
    return out


@click.command()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write results here.")
def main(seed: int, epochs: int, json_out: Path | None) -> None:
    """Build (or reuse) the tuxpaint library, measure BEFORE, train fusion on TRAIN keys, measure AFTER."""
    import torch

    from mmrec import Library
    from mmrec.fusion import Fusion
    from pipelines.fusion_select import modality_dims

    torch.set_num_threads(2)
    stamps = load_stamps()
    train_ids, test_ids = split(stamps, seed)
    lib_path = build_library(stamps, train_ids, seed)
    by_id = {s.item_id: s for s in stamps}
    with Library(lib_path) as lib:
        keys = {r.item_id: int(r.key) for r in lib.store.items() if r.key is not None}
        test = sorted(i for i in test_ids if i in keys and by_id[i].en)
        all_keys = np.array(sorted(keys.values()), dtype=np.int64)
        default = Fusion(modality_dims(lib.models), device=lib.device)
        before = evaluate(lib, default, by_id, keys, test, fused_in_memory(lib, default, all_keys), all_keys)
        print("BEFORE", json.dumps(before), file=sys.stderr)
        train_keys = [keys[i] for i in sorted(train_ids) if i in keys]
        report = lib.train_fusion(epochs=epochs, seed=seed, keys=train_keys)
        after = evaluate(lib, lib.fusion, by_id, keys, test, lib.store.fused(list(all_keys)), all_keys)
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
