"""Fit the collaborative side of live recommendations from a library's own events.

The hybrid scorer (EASE + a content→collaborative mapping + popularity) is the model
``mmrec evaluate`` measures; here it is fitted on everything users did in this library, with the
items' fused vectors as their content, so ``mmrec recommend`` blends the same signals.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from mmrec.events.store import EventStore
from mmrec.profiles.update import event_weight
from mmrec.recommend.collaborative import InteractionData
from mmrec.recommend.hybrid import HybridScorer
from mmrec.store import LibraryStore

# Below this many positive interactions a validation split is too small to tune on; the
# scorer then keeps its default blend weights.
MIN_INTERACTIONS_TO_TUNE = 500


def fit_live_hybrid(events: EventStore, store: LibraryStore) -> tuple[HybridScorer, InteractionData] | None:
    """A fitted scorer and its interaction data, or None when no library item has a positive event."""
    weights: dict[tuple[str, str], float] = defaultdict(float)
    for event in events.iter_events():
        w = event_weight(event)
        if w > 0:
            weights[(event.user_id, event.item_id)] += w
    items = sorted({item for _, item in weights})
    records = [store.get(i) for i in items]
    known = [r for r in records if r is not None and r.key is not None and r.status == "ok"]
    if not known:
        return None
    keep = {r.item_id for r in known}
    triples = [(u, i, w) for (u, i), w in sorted(weights.items()) if i in keep]
    data = InteractionData.from_triples(triples, items=[r.item_id for r in known])
    content = store.fused([int(r.key) for r in known])
    scorer = HybridScorer(tune=len(triples) >= MIN_INTERACTIONS_TO_TUNE)
    scorer.fit(data, item_content=np.asarray(content, dtype=np.float32))
    return scorer, data
