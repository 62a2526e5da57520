#!/usr/bin/env python3
"""Audio similarity, raw sound-encoder vectors against ``mmrec similar``, side by side.

Leave-one-out on a labelled set (``scripts/make_sound_set.py OUT`` then ``mmrec encode OUT/clips
--library LIB``): every labelled item is a query; the gallery is every other item of the library.

- ``raw``: cosine of the stored ``audio`` modality vectors (what the sound encoder alone gives);
- ``fused``: ``Library.similar(item_id)``, the path users take (the library's fusion and index).

Reports top-1 (is the first neighbour of the same label) and P@10 (share of the same label among
the first 10). Also in-memory variants of the fused vectors (``--variants``) to see what pulls
fusion below raw: the stored speech blocks left out (what speech gating does at encode time), and
the centred default fusion (``mmrec.fusion.centring``) taken on this library.

    python scripts/eval_sound_similarity.py --library LIB --labels OUT/labels.csv [--variants] [--json F]
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click
import numpy as np

from mmrec import Library
from mmrec.fusion import Fusion
from mmrec.fusion.centring import centred_fusion, modality_means
from mmrec.fusion.library_training import read_items


def read_labels(path: Path) -> dict[str, str]:
    """``item_id,label`` rows."""
    with open(path, encoding="utf-8", newline="") as fh:
        return {row["item_id"]: row["label"] for row in csv.DictReader(fh)}


def scores_from_order(order: list[list[str]], queries: list[str], labels: dict[str, str]) -> dict[str, float]:
    """top-1 and P@10 of ranked neighbour ids per query."""
    top1 = [bool(o) and labels.get(o[0]) == labels[q] for q, o in zip(queries, order, strict=True)]
    p10 = [
        np.mean([labels.get(x) == labels[q] for x in o[:10]]) if o else 0.0
        for q, o in zip(queries, order, strict=True)
    ]
    return {
        "top1": round(float(np.mean(top1)), 4),
        "P@10": round(float(np.mean(p10)), 4),
        "queries": len(queries),
    }


def rank_matrix(vecs: np.ndarray, ids: list[str], queries: list[str]) -> list[list[str]]:
    """Nearest ids (self excluded) of each query by inner product of unit rows."""
    pos = {x: i for i, x in enumerate(ids)}
    out = []
    for q in queries:
        s = vecs @ vecs[pos[q]]
        s[pos[q]] = -np.inf
        out.append([ids[j] for j in np.argsort(-s)[:10]])
    return out


@click.command()
@click.option(
    "--library", "library", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True
)
@click.option("--labels", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True)
@click.option("--variants", is_flag=True, help="Also in-memory fusion variants (no speech blocks, centred).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def main(library: Path, labels: Path, variants: bool, json_out: Path | None) -> None:
    """Print raw vs fused leave-one-out top-1 and P@10."""
    wanted = read_labels(labels)
    with Library(library, create=False, device="cpu") as lib:
        records = [r for r in lib.store.items() if r.key is not None]
        ids = [r.item_id for r in records]
        keys = [int(r.key) for r in records]  # type: ignore[arg-type]
        queries = [i for i in ids if i in wanted]
        audio = lib.store.vectors("audio", keys)
        have = [i for i, v in enumerate(audio) if v is not None]
        raw = np.stack([audio[i][0] / np.linalg.norm(audio[i][0]) for i in have])
        raw_ids = [ids[i] for i in have]
        result: dict[str, object] = {
            "library": str(library),
            "fusion": lib.store.fusion_version() or "default",
        }
        result["raw"] = scores_from_order(
            rank_matrix(raw, raw_ids, [q for q in queries if q in set(raw_ids)]),
            [q for q in queries if q in set(raw_ids)],
            wanted,
        )
        fused_order = [[h.item_id for h in lib.similar(q, k=10).results] for q in queries]
        result["fused"] = scores_from_order(fused_order, queries, wanted)
        speech = (
            sum(v is not None for v in lib.store.vectors("speech", keys))
            if "speech" in lib.fusion.dims
            else 0
        )
        result["items_with_speech_block"] = int(speech)
        if variants:
            dims = dict(lib.fusion.dims)
            items = read_items(lib.store, keys, list(dims))
            no_speech = [{m: v for m, v in it.items() if m != "speech"} for it in items]
            plain = Fusion(dims, device="cpu")
            centred = centred_fusion(modality_means(lib.store, keys, dims), dims, "cpu")
            for name, fusion, its in (
                ("default", plain, items),
                ("default, no speech blocks", plain, no_speech),
                ("centred", centred, items),
                ("centred, no speech blocks", centred, no_speech),
            ):
                vecs = fusion.fuse(its)[0]
                result[name] = scores_from_order(rank_matrix(vecs, ids, queries), queries, wanted)
    for name, value in result.items():
        print(f"{name:28s} {value}")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
