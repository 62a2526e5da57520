#!/usr/bin/env python3
"""The centred default fusion against the plain default, and ``train-fusion`` by training-set size.

Library: a stratified tuxpaint subset (at most ``--cap`` stamps per top-level category, evenly spaced
in sorted order), split 80/20 by seed and encoded as ``scripts/eval_tuxpaint.py`` does (train stamps
with their English caption as title, test stamps image-only), under ``--root``. Metrics are
``eval_tuxpaint.evaluate``'s (text -> image R@1/5/10 in the test and the whole gallery, English and
Chinese captions; same-category P@10), plus hubness of the fused vectors (``mmrec.evaluate.hubness``).

1. ``default`` vs ``centred`` (``mmrec.fusion.centring``, what ``mmrec encode`` publishes) and
   ``centred, queries centred too`` (the rejected symmetric variant), all fused in memory;
2. ``--sizes``: ``train_library_fusion`` on n captioned train stamps (seeds 0 and 1) against the
   centred default: how ``AUTO_TRAIN_PAIRS`` was chosen.

    python scripts/eval_default_fusion.py --root /tmp/df-tux2 [--cap 30] [--sizes 16,32,64,1000]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_tuxpaint as et  # noqa: E402


def subset(cap: int) -> list[et.Stamp]:
    """At most ``cap`` stamps per top-level category, evenly spaced in sorted order."""
    by_cat: dict[str, list[et.Stamp]] = defaultdict(list)
    for s in et.load_stamps():
        by_cat[s.category].append(s)
    out: list[et.Stamp] = []
    for _, stamps in sorted(by_cat.items()):
        step = max(1.0, len(stamps) / cap)
        out.extend(stamps[int(i * step)] for i in range(min(cap, len(stamps))))
    return out


def _short(result: dict) -> str:
    return json.dumps({k: v for k, v in result.items() if "queries" not in k})


@click.command()
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--cap", type=int, default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sizes", default="16,32,64,1000", show_default=True, help="train-fusion sizes ('' to skip)")
def main(root: Path, cap: int, seed: int, sizes: str) -> None:
    """Build (or reuse) the subset library and print every figure."""
    import torch

    from mmrec import Library
    from mmrec.evaluate.hubness import vector_hubness
    from mmrec.fusion import Fusion
    from mmrec.fusion.centring import centred_fusion, modality_means
    from mmrec.fusion.library_training import train_library_fusion

    torch.set_num_threads(2)
    et.EVAL_ROOT = root
    stamps = subset(cap)
    train_ids, test_ids = et.split(stamps, seed)
    lib_path = et.build_library(stamps, train_ids, seed)
    by_id = {s.item_id: s for s in stamps}
    with Library(lib_path, create=False, device="cpu") as lib:
        keys = {r.item_id: int(r.key) for r in lib.store.items() if r.key is not None}
        test = sorted(i for i in test_ids if i in keys and by_id[i].en)
        all_keys = np.array(sorted(keys.values()), dtype=np.int64)
        dims = dict(lib.fusion.dims)
        print(f"items {len(keys)}, test stamps with a caption {len(test)}", flush=True)
        centred = centred_fusion(modality_means(lib.store, [int(k) for k in all_keys], dims), dims, "cpu")
        variants = {
            "default": Fusion(dims, device="cpu"),
            "centred": centred,
            "centred, queries centred too": Fusion(dims, device="cpu", centers=centred.centers),
        }
        for name, fusion in variants.items():
            fused = et.fused_in_memory(lib, fusion, all_keys)
            hub = vector_hubness(fused)
            result = et.evaluate(lib, fusion, by_id, keys, test, fused, all_keys)
            print(
                f"{name}: {_short(result)} hubness max {hub.max_occurrence}/{hub.lists} skew {hub.skewness:.2f}",
                flush=True,
            )
        train_keys = [keys[i] for i in sorted(train_ids) if i in keys and by_id[i].en]
        for n in [int(x) for x in sizes.split(",") if x.strip()]:
            for s in (0, 1):
                pick = sorted(int(k) for k in np.random.default_rng(s).permutation(train_keys)[:n])
                fusion, _ = train_library_fusion(
                    lib.store, dims, 30, keys=pick, holdout_fraction=0.0, seed=s, device="cpu"
                )
                fused = et.fused_in_memory(lib, fusion, all_keys)
                result = et.evaluate(lib, fusion, by_id, keys, test, fused, all_keys)
                print(f"trained n={len(pick)} seed={s}: {_short(result)}", flush=True)


if __name__ == "__main__":
    main()
