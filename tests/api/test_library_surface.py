"""The typed Library surface the server calls: items, item pages, media paths, live events,
profiles, recommendations, uploads; and queries that need no encoder load none."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import encoders.registry as registry
from mmrec import Library
from mmrec.errors import InvalidInputError, ItemNotFoundError
from mmrec.recommend.recommender import UnknownUserError
from mmrec.results import IngestResult, ItemPage, RecommendationList
from mmrec.search import SearchFilters


def test_items_pages_cover_the_library_without_full_paths(library: Library) -> None:
    pages = [library.items(offset=o, limit=4) for o in (0, 4, 8)]
    assert all(isinstance(p, ItemPage) and p.total == 9 for p in pages)
    ids = [i.item_id for p in pages for i in p.items]
    assert len(ids) == len(set(ids)) == 9
    by_id = {i.item_id: i for p in pages for i in p.items}
    assert by_id["images/dog.png"].path_name == "dog.png" and by_id["images/dog.png"].title
    assert by_id["article-cats"].path_name is None
    assert all("/" not in (i.path_name or "") for i in by_id.values())
    videos = library.items(filters=SearchFilters(kind="video"))
    assert [i.item_id for i in videos.items] == ["bikes.mp4"] and videos.total == 1
    food = library.items(filters=SearchFilters(tag="food"))
    assert {i.item_id for i in food.items} == {"images/apple.png", "images/banana.png"}
    json.dumps(pages[0].to_dict())  # JSON-ready
    with pytest.raises(InvalidInputError) as err:
        library.items(limit=0)
    assert err.value.field == "limit"


def test_item_detail_and_media_path(library: Library, media: Path) -> None:
    bikes = library.item("bikes.mp4")
    assert (bikes.kind, bikes.status, bikes.path_name) == ("video", "ok", "bikes.mp4")
    assert bikes.width and bikes.height and bikes.duration_s and bikes.duration_s > 1
    assert "frames" in bikes.modalities and sum(bikes.attention.values()) == pytest.approx(1.0, abs=1e-4)
    assert bikes.visual_tags and all(isinstance(s, float) for _, s in bikes.visual_tags)
    assert library.media_path("bikes.mp4") == (media / "bikes.mp4").resolve()
    for bad in ("no/such/item", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd"):
        with pytest.raises(ItemNotFoundError):
            library.item(bad)
        with pytest.raises(ItemNotFoundError):
            library.media_path(bad)
    with pytest.raises(ItemNotFoundError):  # a text item has no file to serve
        library.media_path("article-cats")


def test_live_events_change_the_next_recommendations(library: Library) -> None:
    rows: list[object] = [
        {"user_id": "ann", "item_id": "images/dog.png", "event": "like", "timestamp": 1_700_000_000},
        {"user_id": "ann", "item_id": "images/elephant.png", "event": "like"},  # timestamp: now
        {"user_id": "ann", "item_id": "images/apple.png", "event": "fly"},
        "not an object",
        {"user_id": "", "item_id": "images/apple.png", "event": "like"},
    ]
    result = library.add_events(rows)  # type: ignore[arg-type]
    assert isinstance(result, IngestResult)
    assert (result.kind, result.added, result.duplicates, result.users) == ("events", 2, 0, ["ann"])
    assert result.profiles_updated == 1
    assert [(e.line, e.field) for e in result.errors] == [(3, "event"), (4, "row"), (5, "user_id")]
    profile = library.profile("ann")
    assert profile.n_events == 2 and profile.seen == 2 and profile.interests
    first = library.recommend("ann", k=3)
    assert isinstance(first, RecommendationList) and len(first.results) == 3
    ids = [r.item_id for r in first.results]
    assert not {"images/dog.png", "images/elephant.png"} & set(ids)
    assert all(r.reasons for r in first.results)

    # The item ranked first is liked now: the very next call excludes it and the profile counts it.
    top = ids[0]
    again = library.add_events([{"user_id": "ann", "item_id": top, "event": "like"}])
    assert again.added == 1 and again.profiles_updated == 1
    assert library.profile("ann").n_events == 3
    assert top not in [r.item_id for r in library.recommend("ann", k=3).results]
    dup = library.add_events([rows[0]])  # type: ignore[list-item]
    assert (dup.added, dup.duplicates) == (0, 1)
    with pytest.raises(UnknownUserError):
        library.recommend("nobody")
    with pytest.raises(InvalidInputError):
        library.add_events({"user_id": "ann"})  # type: ignore[arg-type]


def test_comments_and_self_description(library: Library) -> None:
    res = library.add_comments(
        [{"user_id": "zoe", "item_id": "images/banana.png", "text": "这根香蕉看起来很好吃，我很喜欢"}]
    )
    assert (res.kind, res.added, res.profiles_updated) == ("comments", 1, 1)
    assert library.profile("zoe").n_events == 1
    described = library.describe_user("cold", "I love fire engines and buses")
    assert described.dim == library.fusion.dim
    recs = [r.item_id for r in library.recommend("cold", k=2).results]
    assert set(recs) == {"images/firetruck.png", "images/double_decker_bus.png"}
    (analysis,) = library.analyze(["Terrible, boring video."])
    assert analysis.language == "en" and analysis.sentiment < 0


def test_similar_to_an_upload(library: Library, media: Path) -> None:
    data = (media / "images" / "banana.png").read_bytes()
    response = library.similar_to_upload(data, "my snack.PNG", k=2)
    assert response.results[0].item_id == "images/banana.png"
    assert "path" not in response.query and response.query["filename"] == "my snack.PNG"
    with pytest.raises(InvalidInputError) as err:
        library.similar_to_upload(b"", "x.png")
    assert err.value.field == "file"
    with pytest.raises(InvalidInputError) as err:
        library.similar_to_upload(data, "../../etc/passwd")
    assert err.value.field == "filename"


def test_queries_without_an_encoder_load_none(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """similar by id, items, item, profile and recommend on a fresh Library never load model weights."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"an encoder was loaded: {args}")

    library.add_events([{"user_id": "kim", "item_id": "images/apple.png", "event": "like"}])
    monkeypatch.setattr(registry, "_load_bundled", refuse)
    monkeypatch.setattr(registry, "_load_hub", refuse)
    fresh = Library(library.path, create=False)
    try:
        assert fresh.similar("images/dog.png", k=2).results[0].item_id == "images/elephant.png"
        assert fresh.items(limit=2).total == 9 and fresh.item("images/dog.png").kind == "image"
        assert fresh.profile("kim").n_events == 1
        assert fresh.recommend("kim", k=2).results
        assert "models" not in fresh._cache
        with pytest.raises(AssertionError, match="an encoder was loaded"):
            fresh.search("a dog")  # the check itself can fail: text search needs the text encoder
    finally:
        fresh.close()


def test_one_library_serves_many_threads(library: Library) -> None:
    """Concurrent events, profiles, recommendations and item reads on one shared instance."""

    def work(n: int) -> int:
        user = f"t{n % 3}"
        item = ["images/dog.png", "images/apple.png", "images/firetruck.png"][n % 3]
        library.add_events(
            [{"user_id": user, "item_id": item, "event": "view", "value": 0.9, "timestamp": n}]
        )
        library.recommend(user, k=2)
        library.similar(item, k=2)
        return library.profile(user).n_events

    with ThreadPoolExecutor(max_workers=6) as pool:
        counts = list(pool.map(work, range(24)))
    assert min(counts) >= 1
    assert sorted(library.profile(f"t{u}").n_events for u in range(3)) == [8, 8, 8]


def test_served_items_and_exploration_reach_the_recommender(library: Library) -> None:
    from mmrec.events.store import EventStore

    if not hasattr(EventStore, "record_served"):
        pytest.skip("served items and exploration arrive with the recommender of branch reco-loop")
    library.add_events([{"user_id": "sam", "item_id": "images/dog.png", "event": "like"}])
    first = library.recommend("sam", k=3, record_served=True)
    served = library.events.served("sam")  # type: ignore[attr-defined]
    assert set(served) == {r.item_id for r in first.results}
    assert not library.events.served("ann")  # type: ignore[attr-defined]
    explored = library.recommend("sam", k=4, explore=0.5)
    assert explored.explore == 0.5
    assert any(reason.kind == "explore" for r in explored.results for reason in r.reasons)


def test_block_layout_explains_scores_like_the_fusion(library: Library) -> None:
    from mmrec.fusion.model import MODALITIES
    from mmrec.search import FUSED_BLOCK_ORDER, BlockLayout

    assert FUSED_BLOCK_ORDER == MODALITIES
    layout = BlockLayout(library.fusion.dims)
    assert layout.dim == library.fusion.dim and layout.slices == library.fusion.slices
    keys = [int(r.key) for r in library.store.items() if r.key is not None]
    vecs = library.store.fused(keys)
    assert layout.contributions(vecs[0], vecs) == library.fusion.contributions(vecs[0], vecs)


NO_TORCH = """
import sys
from mmrec import Library
lib = Library(sys.argv[1], create=False)
assert lib.similar("images/dog.png", k=2).results[0].item_id == "images/elephant.png"
assert lib.items(limit=3).total == 9 and lib.item("bikes.mp4").kind == "video"
assert lib.profile("nt").n_events == 1 and lib.recommend("nt", k=2).results
heavy = sorted(m for m in ("torch", "encoders.registry", "mmrec.fusion") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_queries_by_id_and_user_do_not_even_import_torch(library: Library) -> None:
    """A fresh process answers similar-by-id, items, item, profile and recommend without the model stack."""
    import subprocess
    import sys

    library.add_events([{"user_id": "nt", "item_id": "images/banana.png", "event": "like"}])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(library.path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_enough_live_events_refit_the_collaborative_model(library: Library) -> None:
    try:
        from mmrec.recommend.recommender import RefitPolicy  # type: ignore[attr-defined]
    except ImportError:
        pytest.skip("fold-in and refits arrive with the recommender of branch reco-loop")
    library.add_events([{"user_id": "rex", "item_id": "images/dog.png", "event": "like"}])
    reco = library.recommender
    reco.refit_policy = RefitPolicy(max_pending_events=2)
    library.add_events([{"user_id": "rex", "item_id": "images/elephant.png", "event": "like"}])
    library.add_events([{"user_id": "rex", "item_id": "images/banana.png", "event": "like"}])
    library.wait_for_refit(60)
    assert reco.pending_events == 0  # refitted in the background on every stored event
    assert "images/banana.png" in reco.cf_items
