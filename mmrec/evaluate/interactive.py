"""The ``interactive`` protocol: simulated users answer several rounds of recommendations.

Each user's interactions are split 75/25 per user (seeded). The 75% are the user's history: stored
as events (a like for ratings ≥ 4, else a view whose watch ratio is rating / 5) and folded into
profiles, and the collaborative model is fitted on all users' history. The 25% are what the user
would accept. Every round the recommender serves ``k`` items per user; the user accepts those in
their held-out set (the same like/view events, now timestamped after the serving) and ignores the
rest. Answers go through the live path that ``mmrec ingest`` and the server use: the event store,
:class:`~mmrec.profiles.live.LiveProfiles`, served-item records and :meth:`Recommender.observe`.

Arms, with the same users, split and seed:

- ``static``: one list of ``k × rounds`` items at the start, served ``k`` at a time, no feedback;
- ``live``: feedback on, no exploration;
- ``live+explore``: feedback on, a share of each list from the exploration policy.

Per round: mean hits per user, nDCG@k against what the user has not accepted yet, catalogue
coverage and intra-list diversity; cumulatively: hits and coverage so far, nDCG averaged so far.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mmrec.errors import InvalidInputError
from mmrec.evaluate import metrics as M
from mmrec.evaluate.content import EmbedTexts, embed_items
from mmrec.evaluate.datasets import Dataset, load_dataset
from mmrec.evaluate.splits import stratified_split
from mmrec.events.records import EventRecord
from mmrec.events.store import EventStore
from mmrec.profiles import LiveProfiles, refresh_profiles
from mmrec.recommend.collaborative import InteractionData
from mmrec.recommend.explore import ExploreConfig
from mmrec.recommend.hybrid import HybridScorer
from mmrec.recommend.recommender import Recommender

ARMS = ("static", "live", "live+explore")
ROUND_SECONDS = 3600.0  # simulated time between rounds


@dataclass
class DatasetItem:
    """The catalogue fields the recommender reads (a library item without media)."""

    key: int
    item_id: str
    title: str
    tags: list[str] = field(default_factory=list)
    status: str = "ok"


class DatasetStore:
    """A dataset's items as a read-only library store: text vectors stand in for fused vectors."""

    def __init__(self, data: Dataset, content: np.ndarray) -> None:
        self.items = [
            DatasetItem(n, iid, t) for n, (iid, t) in enumerate(zip(data.item_ids, data.titles, strict=True))
        ]
        self.by_id = {it.item_id: it for it in self.items}
        self.vectors = np.ascontiguousarray(content, dtype=np.float32)

    def get(self, item_id: str) -> DatasetItem | None:
        return self.by_id.get(item_id)

    def get_by_keys(self, keys: Sequence[int]) -> list[DatasetItem | None]:
        return [self.items[int(k)] if 0 <= int(k) < len(self.items) else None for k in keys]

    def fused(self, keys: Sequence[int]) -> np.ndarray:
        return self.vectors[np.asarray(list(keys), dtype=np.int64)]

    def attention(self, keys: Sequence[int]) -> list[dict[str, float]]:
        return [{"text": 1.0} for _ in keys]

    def iter_fused(self, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for lo in range(0, len(self.items), batch_size):
            hi = min(lo + batch_size, len(self.items))
            yield np.arange(lo, hi, dtype=np.int64), self.vectors[lo:hi]


class ExactIndex:
    """Inner-product search over every item (datasets are small enough to scan)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def search(
        self, queries: np.ndarray, k: int, allowed_keys: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.atleast_2d(queries).astype(np.float32) @ self.vectors.T
        k = min(k, scores.shape[1])
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        keys = np.take_along_axis(part, order, axis=1)
        return np.take_along_axis(scores, keys, axis=1), keys.astype(np.int64)


def answer_event(user_id: str, item_id: str, rating: float, ts: float) -> EventRecord:
    """How a simulated user accepts an item: a like for ratings ≥ 4, else a view (watch ratio rating / 5)."""
    if rating >= 4:
        return EventRecord(user_id, item_id, "like", float(rating), ts)
    return EventRecord(user_id, item_id, "view", float(np.clip(rating / 5.0, 0.0, 1.0)), ts)


def run_interactive(
    dataset: str | Path,
    k: int = 10,
    rounds: int = 10,
    seeds: Sequence[int] = (42, 43, 44),
    explore: float = 0.2,
    max_users: int | None = None,
    embed_texts: EmbedTexts | None = None,
    model_key: str | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Run the three arms once per seed; return per-round and cumulative figures (means over seeds)."""
    if rounds < 1:
        raise InvalidInputError("rounds", "rounds", f"must be >= 1, got {rounds}")
    if k < 1:
        raise InvalidInputError("k", "k", f"must be >= 1, got {k}")
    if not 0.0 < explore <= 1.0:
        raise InvalidInputError("explore", "explore", f"must be within (0, 1], got {explore}")
    if not seeds:
        raise InvalidInputError("seeds", "seeds", "at least one seed is needed")
    data = load_dataset(dataset)
    content = embed_items(data.item_documents(), embed_texts=embed_texts, model_key=model_key)
    with tempfile.TemporaryDirectory(prefix="mmrec-interactive-", dir=workdir) as tmp:
        per_seed = [
            _run_seed(data, content, k, rounds, int(s), explore, max_users, Path(tmp) / f"seed-{s}")
            for s in seeds
        ]
    arms = {a: _mean_rounds([p["arms"][a]["rounds"] for p in per_seed]) for a in ARMS}
    final = {a: arms[a][-1] for a in ARMS}
    return {
        "dataset": data.name,
        "protocol": "interactive",
        "k": k,
        "rounds": rounds,
        "explore": explore,
        "metrics": final["live+explore"],
        "baselines": {"static": final["static"], "live": final["live"]},
        "arms": {a: {"rounds": arms[a], "final": final[a]} for a in ARMS},
        "seeds": [int(s) for s in seeds],
        "per_seed": per_seed,
    }


def _mean_rounds(runs: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    return [
        {key: float(np.mean([run[r][key] for run in runs])) for key in runs[0][r]}
        for r in range(len(runs[0]))
    ]


@dataclass
class _Setup:
    data: Dataset
    store: DatasetStore
    index: ExactIndex
    hybrid: HybridScorer
    train: InteractionData
    users: list[str]
    held: dict[str, dict[int, float]]  # user -> item key -> rating
    start: dict[str, float]  # user -> time of the first round (a day after their last history event)


def _run_seed(
    data: Dataset,
    content: np.ndarray,
    k: int,
    rounds: int,
    seed: int,
    explore: float,
    max_users: int | None,
    folder: Path,
) -> dict[str, Any]:
    started = time.perf_counter()
    setup, train_rows = _prepare(data, content, seed, max_users, folder)
    # Thousands of tiny matrix products per round: BLAS threads only add contention there.
    with threadpool_limits(limits=1, user_api="blas"):
        arms = {
            arm: _arm_in(setup, arm, folder, k, rounds, explore, ExploreConfig(seed=seed)) for arm in ARMS
        }
    return {
        "seed": seed,
        "n_users": len(setup.users),
        "n_items": len(data.item_ids),
        "n_history": int(len(train_rows)),
        "n_held_out": int(sum(len(h) for h in setup.held.values())),
        "arms": arms,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _prepare(
    data: Dataset, content: np.ndarray, seed: int, max_users: int | None, folder: Path
) -> tuple[_Setup, np.ndarray]:
    """Split, fit the hybrid on the history and store it (with profiles) in ``folder/base``."""
    train_rows, held_rows = stratified_split(data.users, ratio=0.75, seed=seed)
    all_users = sorted(set(data.users.tolist()))
    train = InteractionData.from_frame(
        data.users[train_rows], data.items[train_rows], users=all_users, items=data.item_ids
    ).binary()
    store = DatasetStore(data, content)
    held: dict[str, dict[int, float]] = {}
    for r in held_rows:
        held.setdefault(str(data.users[r]), {})[store.by_id[str(data.items[r])].key] = float(data.ratings[r])
    users = sorted(held)
    if max_users is not None and len(users) > max_users:
        users = sorted(np.random.default_rng(seed).choice(users, max_users, replace=False).tolist())
    hybrid = HybridScorer(seed=seed).fit(train, content)
    setup = _Setup(
        data,
        store,
        ExactIndex(store.vectors),
        hybrid,
        train,
        users,
        {u: held[u] for u in users},
        _starts(data, train_rows, users),
    )
    _history_store(setup, train_rows, folder / "base")
    return setup, train_rows


def _starts(data: Dataset, train_rows: np.ndarray, users: list[str]) -> dict[str, float]:
    """Each user's session starts a day after their own last history event, so history ages as it would."""
    last: dict[str, float] = {}
    for r in train_rows:
        u = str(data.users[r])
        last[u] = max(last.get(u, float("-inf")), float(data.timestamps[r]))
    fallback = float(data.timestamps.max())
    return {u: last.get(u, fallback) + 86400.0 for u in users}


def _arm_in(
    setup: _Setup,
    arm: str,
    folder: Path,
    k: int,
    rounds: int,
    explore: float,
    exploration: ExploreConfig,
    name: str | None = None,
) -> dict[str, Any]:
    """Run one arm on its own copy of the history database (in ``folder/name``, default the arm's)."""
    path = folder / (name or arm).replace("+", "-")
    path.mkdir(parents=True)
    (path / "events.sqlite").write_bytes((folder / "base" / "events.sqlite").read_bytes())
    return _run_arm(setup, arm, path, k, rounds, explore, exploration)


def _history_store(setup: _Setup, train_rows: np.ndarray, folder: Path) -> Path:
    """An events.sqlite with the simulated users' history and their profiles, copied for every arm."""
    data = setup.data
    wanted = set(setup.users)
    events = [
        answer_event(
            str(data.users[r]), str(data.items[r]), float(data.ratings[r]), float(data.timestamps[r])
        )
        for r in train_rows
        if str(data.users[r]) in wanted
    ]
    folder.mkdir(parents=True)
    with EventStore.open(folder) as store:
        store.add_events(events)
        refresh_profiles(setup.users, store, setup.store)
    return folder / "events.sqlite"


def _run_arm(
    setup: _Setup, arm: str, folder: Path, k: int, rounds: int, explore: float, exploration: ExploreConfig
) -> dict[str, Any]:
    n_items = len(setup.store.items)
    with EventStore.open(folder) as events:
        reco = Recommender(
            setup.store,
            setup.index,
            events,
            hybrid=setup.hybrid,
            interactions=setup.train,
            exploration=exploration,
        )
        live = LiveProfiles(events, setup.store)
        history = events.counts()["events"]
        accepted: dict[str, set[int]] = {u: set() for u in setup.users}
        static_lists: dict[str, list[int]] = {}
        if arm == "static":
            for u in setup.users:
                static_lists[u] = [r.item_key for r in reco.recommend(u, k * rounds, now=setup.start[u])]
        per_round: list[dict[str, float]] = []
        served_all: set[int] = set()
        total_hits = 0
        ndcgs: list[float] = []
        ilds: list[float] = []
        for r in range(rounds):
            lists: list[list[int]] = []
            relevant: list[set[int]] = []
            hits = 0
            for u in setup.users:
                now = setup.start[u] + r * ROUND_SECONDS
                if arm == "static":
                    shown = static_lists[u][r * k : (r + 1) * k]
                else:
                    recs = reco.recommend(
                        u, k, explore=explore if arm == "live+explore" else None, record_served=True, now=now
                    )
                    shown = [x.item_key for x in recs]
                want = set(setup.held[u]) - accepted[u]
                lists.append(shown)
                relevant.append(want)
                got = [key for key in shown if key in want]
                hits += len(got)
                accepted[u].update(got)
                if arm != "static" and got:
                    answers = [
                        answer_event(u, setup.store.items[key].item_id, setup.held[u][key], now + 1.0 + n)
                        for n, key in enumerate(got)
                    ]
                    for e in answers:
                        live.record(e)
                    reco.observe(answers)
            served_all.update(i for shown in lists for i in shown)
            total_hits += hits
            ndcgs.append(M.ndcg_at_k(lists, relevant, k))
            ilds.append(M.intra_list_diversity(lists, setup.store.vectors))
            n_users = max(len(setup.users), 1)
            per_round.append(
                {
                    "round": float(r + 1),
                    "hits": hits / n_users,
                    f"ndcg@{k}": ndcgs[-1],
                    "coverage": M.coverage(lists, n_items),
                    "intra_list_diversity": ilds[-1],
                    "cum_hits": total_hits / n_users,
                    "cum_coverage": len(served_all) / n_items,
                    f"mean_ndcg@{k}": float(np.mean(ndcgs)),
                    "mean_intra_list_diversity": float(np.mean(ilds)),
                }
            )
        counts = events.counts()
    return {
        "rounds": per_round,
        "history_events": history,
        "events": counts["events"],
        "served": counts["served"],
    }
