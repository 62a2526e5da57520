"""Profiles and recommendations on a real stamp library (captions embedded with e5, default fusion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrec.events import EventRecord, EventStore
from mmrec.profiles import (
    ProfileConfig,
    ProfileStore,
    UserProfile,
    calibrate,
    calibrate_tau,
    rebuild_profile,
    set_description,
    update_profile,
)
from mmrec.recommend.recommender import Recommender, UnknownUserError, _mmr

T0 = 1_700_000_000.0


def _events(user: str, item_ids: list[str], event: str = "like", start: float = T0) -> list[EventRecord]:
    return [EventRecord(user, i, event, None, start + n * 60) for n, i in enumerate(item_ids)]


def _category(lib, key: int) -> str:  # noqa: ANN001
    return lib.store.get_by_keys([key])[0].item_id.split("/")[0]


@pytest.fixture()
def events(tmp_path: Path) -> EventStore:
    store = EventStore.open(tmp_path / "ev")
    yield store
    store.close()


@pytest.fixture()
def reco(stamp_library, events: EventStore) -> Recommender:  # noqa: ANN001
    return Recommender(stamp_library.store, stamp_library.index, events, fusion=stamp_library.fusion)


def test_calibrated_threshold_sits_between_unrelated_and_alike(stamp_library) -> None:  # noqa: ANN001
    tau, center = calibrate(stamp_library.store)
    assert tau == calibrate_tau(stamp_library.store)

    def unit(ids: list[str]) -> np.ndarray:
        v = stamp_library.store.fused([stamp_library.store.get(i).key for i in ids]) - center
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    a, v = unit(stamp_library.by_category["animals"]), unit(stamp_library.by_category["vehicles"])
    assert float((a @ v.T).mean()) < tau < float((v @ v.T)[np.triu_indices(len(v), 1)].mean()) + 0.2


def test_two_distinct_interests(stamp_library, events: EventStore) -> None:  # noqa: ANN001
    animals = stamp_library.by_category["animals"][:6]
    vehicles = stamp_library.by_category["vehicles"][:6]
    mixed = [x for pair in zip(animals, vehicles, strict=True) for x in pair]  # interleaved in time
    events.add_events(_events("u", mixed))
    prof = rebuild_profile("u", events, stamp_library.store)
    cats = [{_category(stamp_library, k) for k in i.items} for i in prof.interests]
    assert {"animals"} in cats and {"vehicles"} in cats  # each interest holds one kind of item only
    assert all(len(c) == 1 for c in cats)
    assert len(prof.seen) == 12 and not prof.disliked
    assert set(prof.modality_prefs) == {"text", "tags"} and abs(sum(prof.modality_prefs.values()) - 1) < 1e-6
    vehicle_interest = next(i for i, c in zip(prof.interests, cats, strict=True) if c == {"vehicles"})
    assert vehicle_interest.top_keywords()  # labelled with its items' tags/title words
    restored = UserProfile.from_bytes(prof.to_bytes())
    assert restored.seen == prof.seen and len(restored.interests) == len(prof.interests)
    assert np.allclose(restored.interests[0].vector, prof.interests[0].vector)


def test_time_decay_and_event_weights() -> None:
    prof = UserProfile("u")
    x = np.eye(4, dtype=np.float32)
    cfg = ProfileConfig(half_life_days=1.0, tau=0.5)
    update_profile(prof, EventRecord("u", "a", "like", None, 0.0), x[0], {"text": 1.0}, 1, config=cfg)
    update_profile(prof, EventRecord("u", "b", "view", 0.5, 86400.0), x[1], {"tags": 1.0}, 2, config=cfg)
    a, b = prof.interests
    assert a.weight == pytest.approx(0.5)  # like (1.0) halved after one half-life
    assert b.weight == pytest.approx(0.4 * 0.5)  # view weight x watch ratio
    update_profile(prof, EventRecord("u", "c", "dislike", None, 86400.0), x[2], {"text": 1.0}, 3, config=cfg)
    assert prof.disliked == {3} and len(prof.negatives) == 1 and len(prof.interests) == 2
    assert prof.modality_prefs["text"] > prof.modality_prefs["tags"]


def test_recommendations_exclude_seen_and_disliked(stamp_library, events, reco) -> None:  # noqa: ANN001
    liked = stamp_library.by_category["animals"][:5]
    disliked = stamp_library.by_category["animals"][5:7]
    events.add_events(_events("u", liked) + _events("u", disliked, "dislike", T0 + 3600))
    recs = reco.recommend("u", k=10)
    got = {r.item_id for r in recs}
    assert len(recs) == 10 and not got & set(liked) and not got & set(disliked)
    assert sum(_category(stamp_library, r.item_key) == "animals" for r in recs) >= 7
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    kinds = {r.kind for r in recs[0].reasons}
    assert {"interest", "history", "modality"} <= kinds
    hist = next(r for r in recs[0].reasons if r.kind == "history")
    assert any(i in hist.detail for i in liked)


def test_negative_signals_lower_similar_items(stamp_library, events, reco) -> None:  # noqa: ANN001
    events.add_events(_events("u", stamp_library.by_category["plants"][:4]))
    before = {r.item_id: r.score for r in reco.recommend("u", k=30)}
    food = [i for i in stamp_library.by_category["food"] if i in before][:3]
    assert food, "food stamps should be among a plant lover's candidates"
    events.add_events(_events("u", food[:2], "dislike", T0 + 7200))
    ProfileStore(events).put(rebuild_profile("u", events, stamp_library.store))
    after = {r.item_id: r.score for r in reco.recommend("u", k=30)}
    rest = [i for i in stamp_library.by_category["food"] if i in before and i in after and i not in food[:2]]
    assert rest and all(after[i] < before[i] for i in rest)
    assert not set(food[:2]) & set(after)


def test_diversity_raises_intra_list_diversity(stamp_library, events, reco) -> None:  # noqa: ANN001
    events.add_events(_events("u", stamp_library.by_category["vehicles"][:5]))

    def ild(recs) -> float:  # noqa: ANN001
        v = stamp_library.store.fused([r.item_key for r in recs])
        s = v @ v.T
        return float(1 - s[np.triu_indices(len(recs), 1)].mean())

    plain, diverse = reco.recommend("u", k=10, diversity=0.0), reco.recommend("u", k=10, diversity=0.8)
    assert ild(diverse) > ild(plain)
    assert len({_category(stamp_library, r.item_key) for r in diverse}) >= len(
        {_category(stamp_library, r.item_key) for r in plain}
    )


@pytest.mark.parametrize("text", ["I love cats and dogs", "我喜欢猫和狗"])
def test_cold_start_from_self_description(stamp_library, events, reco, text: str) -> None:  # noqa: ANN001
    with pytest.raises(UnknownUserError, match="describe-user"):
        reco.recommend("new", k=5)
    prof = set_description(UserProfile("new"), text, stamp_library.embed_query(text))
    ProfileStore(events).put(prof)
    recs = reco.recommend("new", k=10)
    share = sum(_category(stamp_library, r.item_key) == "animals" for r in recs) / len(recs)
    base_rate = len(stamp_library.by_category["animals"]) / sum(
        len(v) for v in stamp_library.by_category.values()
    )
    assert share >= 0.6 > base_rate
    assert recs[0].reasons[0].kind == "interest" and "self-description" in recs[0].reasons[0].detail


def test_mmr_lambda_one_is_plain_ranking() -> None:
    rel = np.array([0.1, 0.9, 0.5], dtype=np.float32)
    vecs = np.eye(3, dtype=np.float32)
    assert _mmr(rel, vecs, 2, 1.0) == [1, 2]
    dup = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    assert _mmr(np.array([0.9, 0.85, 0.5], np.float32), dup, 2, 0.3) == [0, 2]


def test_collaborative_candidates_blend_in(stamp_library, events, reco) -> None:  # noqa: ANN001
    """Other users who liked these vehicles also liked one food stamp: it surfaces with a collaborative reason."""
    from mmrec.recommend.collaborative import InteractionData
    from mmrec.recommend.hybrid import HybridScorer

    vehicles = stamp_library.by_category["vehicles"][:6]
    treat = stamp_library.by_category["food"][-1]
    triples = [(f"o{u}", v, 1.0) for u in range(30) for v in vehicles[u % 3 : u % 3 + 3] + [treat]]
    triples += [
        (f"p{u}", p, 1.0) for u in range(30) for p in stamp_library.by_category["plants"][u % 4 : u % 4 + 3]
    ]
    data = InteractionData.from_triples(triples)
    hybrid = HybridScorer(tune=False).fit(data)
    events.add_events(_events("u", vehicles[:3]))
    content_only = [r.item_id for r in reco.recommend("u", k=10)]
    blended = Recommender(stamp_library.store, stamp_library.index, events, hybrid=hybrid).recommend(
        "u", k=10
    )
    ids = [r.item_id for r in blended]
    assert treat in ids and (treat not in content_only or ids.index(treat) < content_only.index(treat))
    rec = blended[ids.index(treat)]
    assert "collaborative" in {r.kind for r in rec.reasons}
    assert not set(ids) & set(vehicles[:3])


def test_popular_items_reach_users_without_content_signal(stamp_library, events, reco) -> None:  # noqa: ANN001
    """A user whose only event is on an item outside the library still gets what others liked most."""
    hit = stamp_library.by_category["plants"][0]
    events.add_events([EventRecord(f"o{u}", hit, "like", None, T0 + u) for u in range(5)])
    events.add_events([EventRecord("o0", stamp_library.by_category["food"][0], "like", None, T0 + 99)])
    events.add_events([EventRecord("lost", "not/in/library", "like", None, T0)])
    recs = reco.recommend("lost", k=3)
    assert recs[0].item_id == hit
    assert recs[0].reasons[0].kind == "popular"
    assert events.popular_items(2) == [(hit, 5), (stamp_library.by_category["food"][0], 1)]


def test_live_events_match_a_full_rebuild(stamp_library, events, reco) -> None:  # noqa: ANN001
    from mmrec.profiles import LiveProfiles

    live = LiveProfiles(events, stamp_library.store)
    stream = _events("u", stamp_library.by_category["food"][:4]) + _events(
        "u", stamp_library.by_category["animals"][:2], "skip", T0 + 600
    )
    for e in stream:
        assert live.record(e) is not None
    assert live.record(stream[0]) is None  # duplicate: stored once, folded once
    incremental = ProfileStore(events).get("u")
    full = rebuild_profile("u", events, stamp_library.store)
    assert incremental.n_events == full.n_events == 6
    assert incremental.seen == full.seen and len(incremental.negatives) == len(full.negatives) >= 1
    assert np.allclose(incremental.interests[0].vector, full.interests[0].vector, atol=1e-5)
    assert reco.profile("u").n_events == 6  # not stale: no rebuild needed
    events.add_events(_events("u", stamp_library.by_category["plants"][:1], start=T0 + 900))
    assert reco.profile("u").n_events == 7  # a row added behind its back triggers a rebuild


def test_live_hybrid_is_fitted_from_the_library_events(stamp_library, events, reco) -> None:  # noqa: ANN001
    """What `mmrec recommend` does: fit the hybrid on the event store; co-liked items surface with a reason."""
    from mmrec.recommend.live_hybrid import fit_live_hybrid

    vehicles = stamp_library.by_category["vehicles"][:6]
    treat = stamp_library.by_category["food"][-1]
    for u in range(30):
        events.add_events(_events(f"o{u}", [*vehicles[u % 3 : u % 3 + 3], treat]))
    events.add_events(_events("u", vehicles[:3]))
    events.add_events(_events("u", [stamp_library.by_category["plants"][0]], event="dislike"))
    fitted = fit_live_hybrid(events, stamp_library.store)
    assert fitted is not None
    hybrid, data = fitted
    assert set(data.items) == {*vehicles[:5], treat}  # only positively engaged library items
    assert stamp_library.by_category["plants"][0] not in data.items  # a dislike is not an interaction
    recs = Recommender(
        stamp_library.store, stamp_library.index, events, hybrid=hybrid, interactions=data
    ).recommend("u", k=10)
    ids = [r.item_id for r in recs]
    assert treat in ids
    assert "collaborative" in {r.kind for r in recs[ids.index(treat)].reasons}


def test_live_hybrid_needs_positive_events_on_library_items(stamp_library, events) -> None:  # noqa: ANN001
    from mmrec.recommend.live_hybrid import fit_live_hybrid

    events.add_events(_events("u", ["not/in/library"]))
    assert fit_live_hybrid(events, stamp_library.store) is None
