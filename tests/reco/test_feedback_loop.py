"""The feedback loop on a real stamp library: served lists and skips, exploration, collaborative fold-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from mmrec.errors import InvalidInputError
from mmrec.events import EventRecord, EventStore
from mmrec.profiles.update import event_weight
from mmrec.recommend.explore import ExploreConfig
from mmrec.recommend.live_hybrid import fit_live_hybrid
from mmrec.recommend.recommender import Recommender, RefitPolicy, ServedConfig

T0 = 1_700_000_000.0
HOUR = 3600.0


def _likes(user: str, item_ids: list[str], start: float = T0) -> list[EventRecord]:
    return [EventRecord(user, i, "like", None, start + n) for n, i in enumerate(item_ids)]


@pytest.fixture()
def events(tmp_path: Path) -> EventStore:
    store = EventStore.open(tmp_path / "ev")
    yield store
    store.close()


def test_served_stats_count_ignored_skipped_and_engaged(events: EventStore) -> None:
    events.record_served("u", ["a", "b", "c"], T0)
    assert {i: s.times_skipped for i, s in events.served("u").items()} == {"a": 0, "b": 0, "c": 0}
    events.add_events(
        [EventRecord("u", "a", "like", None, T0 + 5), EventRecord("u", "c", "skip", None, T0 + 6)]
    )
    events.record_served("u", ["b", "d"], T0 + HOUR)
    stats = events.served("u")
    assert stats["a"].times_engaged == 1 and stats["a"].times_skipped == 0
    assert stats["b"].times_served == 2 and stats["b"].times_skipped == 1  # passed over once, the next open
    assert stats["b"].last_served == T0 + HOUR
    assert stats["c"].times_skipped == 1  # an explicit skip
    assert stats["d"].times_skipped == 0
    # A new request an hour later means the previous list was seen and passed over ...
    later = events.served("u", as_of=T0 + 2 * HOUR, settle_s=60)
    assert later["b"].times_skipped == 2 and later["d"].times_skipped == 1
    # ... but a reload within the settle time does not skip it.
    assert events.served("u", as_of=T0 + HOUR + 10, settle_s=60)["d"].times_skipped == 0
    assert events.served("u", since=T0 + 1)["b"].times_served == 1
    assert events.served("nobody") == {}
    assert events.counts()["served"] == 5
    events.record_served("u", ["b", "d"], T0 + HOUR)  # idempotent
    assert events.counts()["served"] == 5


def test_ignored_items_sink_and_rest_after_two_skips(stamp_library, events: EventStore) -> None:  # noqa: ANN001
    cfg = ServedConfig(skip_penalty=0.15, skip_limit=2, cooldown_s=24 * HOUR)
    reco = Recommender(stamp_library.store, stamp_library.index, events, served=cfg)
    events.add_events(_likes("u", stamp_library.by_category["vehicles"][:4]))
    before = {r.item_id: r.score for r in reco.recommend("u", k=200, now=T0 + HOUR)}
    first = reco.recommend("u", k=3, record_served=True, now=T0 + HOUR)
    shown = [r.item_id for r in first]
    after = {r.item_id: r.score for r in reco.recommend("u", k=200, now=T0 + 2 * HOUR)}
    for item in shown:  # ignored once: down-weighted by exactly the penalty
        assert after[item] == pytest.approx(before[item] - 0.15, abs=1e-5)
    assert [r.item_id for r in reco.recommend("u", k=3, now=T0 + 2 * HOUR)] != shown
    unshown = next(i for i in before if i not in shown)
    assert after[unshown] == pytest.approx(before[unshown], abs=1e-6)
    # Served and ignored a second time: not served again during the cool-down, back afterwards.
    events.record_served("u", shown, T0 + 2 * HOUR)
    resting = {r.item_id for r in reco.recommend("u", k=200, now=T0 + 3 * HOUR)}
    assert resting and not resting & set(shown)
    back = {r.item_id: r.score for r in reco.recommend("u", k=200, now=T0 + 2 * HOUR + 25 * HOUR)}
    assert set(shown) <= set(back)
    assert back[shown[0]] == pytest.approx(before[shown[0]] - 0.3, abs=1e-5)
    # An item the user engaged with after it was served is seen now: never served again.
    events.add_events([EventRecord("u", shown[0], "like", None, T0 + 2 * HOUR + 26 * HOUR)])
    assert shown[0] not in {r.item_id for r in reco.recommend("u", k=200, now=T0 + 30 * HOUR)}


def test_exploration_is_deterministic_visible_and_off_by_default(stamp_library, events: EventStore) -> None:  # noqa: ANN001
    events.add_events(_likes("u", stamp_library.by_category["animals"][:6]))
    events.add_events(_likes("v", stamp_library.by_category["food"][:3]))

    def lists(seed: int, explore: float | None) -> list[list[tuple[str, str]]]:
        reco = Recommender(
            stamp_library.store, stamp_library.index, events, exploration=ExploreConfig(seed=seed)
        )
        out = []
        for user in ("u", "v"):
            for n in range(4):
                recs = reco.recommend(user, k=6, explore=explore, now=T0 + n * HOUR)
                out.append([(r.item_id, r.reasons[0].kind) for r in recs])
        return out

    a, b = lists(7, 0.34), lists(7, 0.34)
    assert a == b  # same seed, same state, same requests: the same lists
    for recs in a:
        kinds = [kind for _, kind in recs]
        assert len(recs) == 6 and kinds[-2:] == ["explore", "explore"] and "explore" not in kinds[:4]
    assert lists(8, 0.34) != a or lists(9, 0.34) != a  # the seed drives the draws
    assert all(kind != "explore" for recs in lists(7, None) + lists(7, 0.0) for _, kind in recs)
    reco = Recommender(stamp_library.store, stamp_library.index, events)
    *exploit, rec = reco.recommend("u", k=5, explore=0.2, now=T0)
    assert rec.reasons[0].kind == "explore" and rec.reasons[0].detail.startswith("exploring: ")
    assert 0.0 <= rec.reasons[0].weight <= 1.0
    clusters = reco.item_clusters()
    assert clusters is not None and len(clusters) >= 4
    shown = clusters.assign(stamp_library.store.fused([r.item_key for r in exploit]))
    # The slot goes to a cluster the rest of the list does not show yet.
    assert clusters.assign(stamp_library.store.fused([rec.item_key]))[0] not in set(shown.tolist())
    with pytest.raises(InvalidInputError, match="explore"):
        reco.recommend("u", explore=1.5)


def test_fold_in_equals_the_scores_of_the_refitted_row(stamp_library, events: EventStore) -> None:  # noqa: ANN001
    cats = stamp_library.by_category
    for n in range(6):  # users who like one or two categories, so EASE has co-occurrence to learn
        events.add_events(_likes(f"a{n}", cats["animals"][n : n + 6] + cats["plants"][n : n + 3]))
        events.add_events(_likes(f"v{n}", cats["vehicles"][n : n + 6] + cats["food"][n : n + 3]))
    hybrid, data = fit_live_hybrid(events, stamp_library.store)
    policy = RefitPolicy(max_pending_events=3)
    reco = Recommender(
        stamp_library.store,
        stamp_library.index,
        events,
        hybrid=hybrid,
        interactions=data,
        refit_policy=policy,
    )
    before = reco.collaborative_scores("a0")["collaborative"]
    new = _likes("a0", cats["vehicles"][:2], start=T0 + HOUR)
    events.add_events(new)
    reco.observe(new)
    folded = reco.collaborative_scores("a0")
    # X_u·B with the user's new row, computed from scratch from every stored event:
    row = np.zeros(len(data.items), np.float32)
    for e in events.events("a0"):
        if e.item_id in data.item_index and event_weight(e) > 0:
            row[data.item_index[e.item_id]] = 1.0
    expected = hybrid.score(sp.csr_matrix(row[None, :]))
    for name in ("collaborative", "content", "popularity", "total"):
        assert np.array_equal(folded[name], expected[name][0]), name
    assert np.array_equal(hybrid._ease.score(sp.csr_matrix(row[None, :]))[0], row @ hybrid._ease.B)
    assert not np.array_equal(before, folded["collaborative"])
    fresh = Recommender(stamp_library.store, stamp_library.index, events, hybrid=hybrid, interactions=data)
    assert np.array_equal(fresh.collaborative_scores("a0")["total"], folded["total"])
    # Another process stored an event without telling us: the row is rebuilt, not stale.
    events.add_events(_likes("a0", cats["food"][:1], start=T0 + 2 * HOUR))
    assert not np.array_equal(reco.collaborative_scores("a0")["total"], folded["total"])
    assert reco.pending_events == 2 and not reco.needs_refit()
    reco.observe(_likes("a0", cats["food"][:1], start=T0 + 2 * HOUR))
    assert reco.needs_refit()
    report = reco.maybe_refit()
    assert report is not None and report.fitted and report.pending_before == 3
    assert reco.pending_events == 0 and not reco.needs_refit() and report.n_users == 12
    recs = reco.recommend("a0", k=5, now=T0 + 3 * HOUR)
    assert any(r.kind == "collaborative" for rec in recs for r in rec.reasons)


def test_exploring_slots_stay_among_plausible_items(stamp_library, events: EventStore) -> None:  # noqa: ANN001
    """With ``plausible_rank`` an exploring slot takes an item the list's own ranking has in its first
    rank·k, from a cluster the rest of the list does not show (the whole cluster only when none is left)."""
    events.add_events(
        _likes("u", stamp_library.by_category["animals"][:4] + stamp_library.by_category["food"][:2])
    )

    def reco(rank: int | None) -> Recommender:
        cfg = ExploreConfig(seed=3, plausible_rank=rank)
        return Recommender(stamp_library.store, stamp_library.index, events, exploration=cfg)

    ranked = reco(None).recommend("u", k=48, now=T0)  # the ranking itself (first 8k), no exploring
    clusters = reco(8).item_clusters()
    assert clusters is not None
    cluster_of = dict(
        zip(
            [r.item_id for r in ranked],
            clusters.assign(stamp_library.store.fused([r.item_key for r in ranked])),
            strict=True,
        )
    )
    restricted = 0
    for n in range(6):
        *rest, slot = reco(8).recommend("u", k=6, explore=0.1, now=T0 + n * HOUR)
        assert slot.reasons[0].kind == "explore"
        shown = set(clusters.assign(stamp_library.store.fused([r.item_key for r in rest])).tolist())
        assert clusters.assign(stamp_library.store.fused([slot.item_key]))[0] not in shown
        listed = {r.item_id for r in rest}
        plausible = {i for i, c in cluster_of.items() if i not in listed and int(c) not in shown}
        if plausible:  # else no plausible item is left outside the shown clusters: the whole cluster serves
            assert slot.item_id in plausible
            restricted += 1
    assert restricted
