"""Fold-in latency of one new event against a full refit of the collaborative model (MovieLens-100K).

Fold-in: store the event, ``Recommender.observe([event])``, then the user's scores over every item
(``collaborative_scores``: EASE X_u·B + content mapping + popularity). Refit: EASE alone, and the
hybrid scorer without and with its validation tuning (what ``Recommender.refit`` runs).

    PYTHONPATH=. python scripts/bench_foldin.py [--events 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from mmrec.evaluate.content import embed_items
from mmrec.evaluate.datasets import load_dataset
from mmrec.evaluate.interactive import DatasetStore, ExactIndex, answer_event
from mmrec.events.store import EventStore
from mmrec.recommend.collaborative import EASE, InteractionData
from mmrec.recommend.hybrid import HybridScorer
from mmrec.recommend.recommender import Recommender


def _ms(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200, help="new events to fold in one by one")
    ap.add_argument("--refits", type=int, default=3, help="timed refits of each kind")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    data = load_dataset("movielens-100k")
    content = embed_items(data.item_documents())
    rng = np.random.default_rng(0)
    is_new = rng.random(len(data.users)) < 0.02  # 2% of the ratings arrive live, the rest is history
    hist = np.flatnonzero(~is_new)
    live = np.flatnonzero(is_new)[: args.events]
    train = InteractionData.from_frame(data.users[hist], data.items[hist], items=data.item_ids).binary()
    hybrid = HybridScorer(tune=False).fit(train, content)
    store = DatasetStore(data, content)
    out: dict[str, object] = {"users": train.n_users, "items": train.n_items, "history": int(len(hist))}
    with tempfile.TemporaryDirectory() as tmp, EventStore.open(Path(tmp)) as events:
        events.add_events(
            [
                answer_event(
                    str(data.users[r]), str(data.items[r]), float(data.ratings[r]), float(data.timestamps[r])
                )
                for r in hist
            ]
        )
        reco = Recommender(store, ExactIndex(store.vectors), events, hybrid=hybrid, interactions=train)
        for r in live:  # warm each user's row, as a serving process has after its first request
            reco.collaborative_scores(str(data.users[r]))
        fold, score_only = [], []
        for n, r in enumerate(live):
            u = str(data.users[r])
            e = answer_event(u, str(data.items[r]), float(data.ratings[r]), 2e9 + n)
            t0 = time.perf_counter()
            events.add_events([e])
            reco.observe([e])
            reco.collaborative_scores(u)
            fold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            reco.collaborative_scores(u)
            score_only.append(time.perf_counter() - t0)
        out["fold_in_store_observe_score"] = _ms(fold)
        out["score_only"] = _ms(score_only)
    for name, fit in (
        ("refit_ease", lambda: EASE(hybrid.l2).fit(train)),
        ("refit_hybrid_untuned", lambda: HybridScorer(tune=False).fit(train, content)),
        ("refit_hybrid_tuned", lambda: HybridScorer().fit(train, content)),
    ):
        times = []
        for _ in range(args.refits if name != "refit_hybrid_tuned" else 1):
            t0 = time.perf_counter()
            fit()
            times.append(time.perf_counter() - t0)
        out[name] = _ms(times)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        print(f"{key:32s} {value}")


if __name__ == "__main__":
    main()
