"""Forgetting a user on a real small library: no byte of them left in the library folder or the
cache, other users still served, the EASE downdate equal to a refit, the export complete, the HTTP
routes guarded by the key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmrec import Library
from mmrec.recommend.collaborative import EASE, InteractionData, Popularity
from mmrec.recommend.hybrid import HybridScorer
from mmrec.server import create_app, schemas

ROOT = Path(__file__).resolve().parents[2]
STAMPS = {
    "dog": "animals",
    "elephant": "animals",
    "firetruck": "vehicles",
    "double_decker_bus": "vehicles",
    "apple": "food",
    "banana": "food",
}
ITEMS = [f"images/{name}.png" for name in STAMPS]
USER = "alice"
PHRASE = "quokkazanzibar"  # in alice's comments and self-description only
T0 = 1_760_000_000.0


@dataclass(frozen=True)
class Scenario:
    path: Path
    cache: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory, stamps_dir: Path) -> Path:
    media = tmp_path_factory.mktemp("forget-media")
    (media / "images").mkdir()
    for name, category in STAMPS.items():
        png = next(p for p in (stamps_dir / category).rglob(f"{name}.png"))
        shutil.copy(png, media / "images" / f"{name}.png")
        sidecar = {"title": name.replace("_", " "), "tags": [category]}
        (media / "images" / f"{name}.png.json").write_text(json.dumps(sidecar))
    path = tmp_path_factory.mktemp("forget-lib") / "library"
    with Library(path, device="cpu") as lib:
        assert lib.encode(media, workers=1, progress=False).failed == 0
    return path


def _populate(lib: Library) -> None:
    """Three users; alice has hundreds of rows (so SQLite splits pages), comments and a description."""
    rows = []
    for n in range(240):  # alice: interleaved with the others, so her rows share pages with theirs
        rows.append(
            {"user_id": USER, "item_id": ITEMS[n % 4], "event": "view", "value": 0.9, "timestamp": T0 + n}
        )
        if n % 12 == 0:
            k = n // 12
            rows.append({"user_id": "bob", "item_id": ITEMS[2 + k % 4], "event": "like", "timestamp": T0 + n})
            rows.append({"user_id": "carol", "item_id": ITEMS[k % 6], "event": "like", "timestamp": T0 + n})
    rows.append({"user_id": USER, "item_id": ITEMS[0], "event": "like", "timestamp": T0 + 500})
    assert lib.add_events(rows).errors == []
    comments = [
        {"user_id": USER, "item_id": ITEMS[0], "text": f"the {PHRASE} moment made my day, wonderful dog",
         "timestamp": T0 + 600},
        {"user_id": USER, "item_id": ITEMS[1], "text": f"{PHRASE} again, what a lovely elephant",
         "timestamp": T0 + 601},
        {"user_id": "bob", "item_id": ITEMS[2], "text": "great red fire truck", "timestamp": T0 + 602},
    ]  # fmt: skip
    assert lib.add_comments(comments).added == 3
    lib.describe_user(USER, f"I like {PHRASE} films about animals")
    lib.recommend(USER, k=3, record_served=True)
    lib.recommend("bob", k=3, record_served=True)


@pytest.fixture(scope="module")
def populated(encoded: Path, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Scenario:
    """The library with three users' rows, written with ``MMREC_CACHE`` pointing at a fresh folder."""
    tmp = tmp_path_factory.mktemp("forget-populated")
    path, cache = tmp / "library", tmp / "cache"
    shutil.copytree(encoded, path)
    cache.mkdir()
    env = {**os.environ, "MMREC_CACHE": str(cache), "MMREC_DATA": str(data_dir), "PYTHONPATH": str(ROOT)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMREC_CACHE", str(cache))
        mp.setenv("MMREC_DATA", str(data_dir))
        with Library(path, device="cpu", create=False) as lib:
            _populate(lib)
    # Before any forget the needles really are there (the greps below can fail).
    assert _bytes_found(path, [USER.encode(), PHRASE.encode()])
    return Scenario(path, cache, env)


def _scenario(populated: Scenario, tmp: Path) -> Scenario:
    """A private copy of the populated library (same cache folder: every user operation used it)."""
    path = tmp / "library"
    shutil.copytree(populated.path, path)
    return Scenario(path, populated.cache, dict(populated.env))


def _bytes_found(folder: Path, needles: list[bytes]) -> list[tuple[str, bytes]]:
    found = []
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            found += [(str(f.relative_to(folder)), n) for n in needles if n in data]
    return found


@pytest.fixture(scope="module")
def forgotten(
    populated: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Scenario, dict, dict, list[str]]]:
    """A library where alice was forgotten by the CLI: (scenario, receipt, export before, bob's list before)."""
    sc = _scenario(populated, tmp_path_factory.mktemp("forget-cli"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMREC_CACHE", str(sc.cache))
        with Library(sc.path, device="cpu", create=False) as lib:
            bob_before = [r.item_id for r in lib.recommend("bob", k=3).results]
    cli = [sys.executable, "-m", "mmrec.cli.main"]
    exported = subprocess.run(
        [*cli, "export-user", USER, "--library", str(sc.path)], env=sc.env, capture_output=True, text=True,
        timeout=600, check=True,
    ).stdout  # fmt: skip
    done = subprocess.run(
        [*cli, "forget", USER, "--library", str(sc.path), "--json"], env=sc.env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    yield sc, json.loads(done.stdout), json.loads(exported), bob_before


def test_no_byte_of_the_user_is_left_in_library_or_cache(forgotten: tuple) -> None:
    sc, receipt, _, _ = forgotten
    names = {p.name for p in sc.path.iterdir()}
    assert "events.sqlite" in names
    needles = [USER.encode(), PHRASE.encode(), PHRASE.encode("utf-16-le")]
    assert _bytes_found(sc.path, needles) == []  # events.sqlite, its -wal and -shm, index, vectors ...
    assert _bytes_found(sc.cache, needles) == []
    assert receipt["sqlite"][0]["wal_truncated"] is True
    assert receipt["sqlite"][0]["wal_bytes"] == 0


def test_receipt_counts_what_was_removed(forgotten: tuple) -> None:
    _, receipt, exported, _ = forgotten
    removed = receipt["removed"]
    assert removed["events"] == 241 == len(exported["events"])
    assert removed["comments"] == removed["comment_analyses"] == 2
    assert removed["served"] == len(exported["served"]) >= 1
    assert removed["profiles"] == 1 and removed["self_description"] == 1
    assert receipt["popularity_items"] == 4
    assert receipt["models"][0]["method"] == "none"  # a CLI process never loaded the model
    schemas.ErasureReceipt.model_validate(receipt)


def test_export_holds_every_row_of_the_user(forgotten: tuple) -> None:
    _, _, exported, _ = forgotten
    assert exported["user_id"] == USER
    assert exported["counts"] == {
        "events": 241,
        "comments": 2,
        "served": len(exported["served"]),
        "profile": 1,
    }
    assert exported["served"] and {s["item_id"] for s in exported["served"]} <= set(ITEMS)
    assert {e["item_id"] for e in exported["events"]} == set(ITEMS[:4])
    assert all(PHRASE in c["text"] and c["language"] for c in exported["comments"])
    assert exported["description"] == f"I like {PHRASE} films about animals"
    assert exported["profile"]["n_events"] == 243
    schemas.UserExport.model_validate(exported)


def test_other_users_are_still_served_and_alice_is_unknown(forgotten: tuple) -> None:
    sc, _, _, bob_before = forgotten
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMREC_CACHE", str(sc.cache))
        with Library(sc.path, device="cpu", create=False) as lib:
            bob = [r.item_id for r in lib.recommend("bob", k=3).results]
            # Bob saw items 2..5; the model without alice still ranks the two he has not seen.
            assert bob and set(bob) == set(bob_before) == set(ITEMS[:2])
            assert lib.recommender.hybrid is not None
            assert lib.recommender.hybrid.fitted.users == ["bob", "carol"]
            assert lib.recommender.collaborative_scores("carol")  # the collaborative model still scores
            with pytest.raises(KeyError):
                lib.profile(USER)
            with pytest.raises(KeyError):
                lib.export_user(USER)
    again = subprocess.run(
        [sys.executable, "-m", "mmrec.cli.main", "forget", USER, "--library", str(sc.path)],
        env=sc.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert (
        again.returncode == 2
        and "error:" in again.stderr
        and "holds nothing about user 'alice'" in again.stderr
    )
    assert "Traceback" not in again.stderr


def test_server_delete_needs_the_key_and_forgets_in_memory(
    populated: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sc = _scenario(populated, tmp_path_factory.mktemp("forget-http"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMREC_CACHE", str(sc.cache))
        with Library(sc.path, device="cpu", create=False) as lib:
            reco = lib.recommender
            assert USER in reco.hybrid.fitted.user_index
            client = TestClient(create_app(lib, api_key="s3cret"), raise_server_exceptions=False)
            paths = client.get("/openapi.json").json()["paths"]
            assert "delete" in paths["/api/users/{user_id}"] and "get" in paths["/api/users/{user_id}/export"]
            assert client.delete(f"/api/users/{USER}").status_code == 401
            assert client.get(f"/api/users/{USER}/export").status_code == 401
            key = {"Authorization": "Bearer s3cret"}
            got = client.get(f"/api/users/{USER}/export", headers=key)
            assert got.status_code == 200 and got.json()["counts"]["events"] == 241
            version = reco.hybrid.version
            gone = client.delete(f"/api/users/{USER}", headers=key)
            assert gone.status_code == 200, gone.text
            receipt = schemas.ErasureReceipt.model_validate(gone.json())
            model = receipt.models[0]
            assert model.method == "sherman-morrison downdate" and model.held_user
            assert model.version_before == version != model.version_after == reco.hybrid.version
            # In memory the model forgot alice exactly: bob's scores are a refit's without her.
            assert USER not in reco.hybrid.fitted.user_index and USER not in reco._rows
            downdated = reco.collaborative_scores("bob")
            assert reco.refit().n_users == 2
            refitted = reco.collaborative_scores("bob")
            for part in ("collaborative", "popularity", "total"):
                np.testing.assert_allclose(downdated[part], refitted[part], atol=1e-4, err_msg=part)
            missing = client.get(f"/api/users/{USER}/profile")
            assert missing.status_code == 404 and missing.json()["error"]["type"]
            assert client.delete(f"/api/users/{USER}", headers={"X-API-Key": "s3cret"}).status_code == 404
            assert client.get("/api/users/bob/recommendations?k=3").status_code == 200
    assert _bytes_found(sc.path, [USER.encode(), PHRASE.encode()]) == []
    assert _bytes_found(sc.cache, [USER.encode(), PHRASE.encode()]) == []


def test_a_long_lived_library_refits_when_another_process_forgets(
    populated: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sc = _scenario(populated, tmp_path_factory.mktemp("forget-other"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMREC_CACHE", str(sc.cache))
        with Library(sc.path, device="cpu", create=False) as lib:
            version = lib.recommender.hybrid.version
            assert USER in lib.recommender.hybrid.fitted.user_index
            done = subprocess.run(
                [sys.executable, "-m", "mmrec.cli.main", "forget", USER, "--library", str(sc.path)],
                env=sc.env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "forgot 'alice'" in done.stdout and "WAL truncated" in done.stdout
            assert lib.recommend("bob", k=2).results  # the next read notices the erasure and refits
            assert lib.recommender.hybrid.version != version
            assert lib.recommender.hybrid.fitted.users == ["bob", "carol"]


def _movielens(ml100k_dir: Path, n_users: int = 300) -> InteractionData:
    lines = (ml100k_dir / "ml-100k.inter").read_text().splitlines()[1:]
    rows = [ln.split("\t") for ln in lines]
    users = sorted({r[0] for r in rows}, key=int)[:n_users]
    keep = set(users)
    triples = [(r[0], r[1], 1.0) for r in rows if r[0] in keep]
    items = sorted({t[1] for t in triples}, key=int)
    return InteractionData.from_triples(triples, users=users, items=items)


def _without(data: InteractionData, user: str) -> InteractionData:
    keep = [i for i, u in enumerate(data.users) if u != user]
    return InteractionData([data.users[i] for i in keep], list(data.items), data.matrix[keep])


def _b64(p: np.ndarray) -> np.ndarray:
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def test_ease_downdate_equals_a_refit_without_the_user(ml100k_dir: Path) -> None:
    data = _movielens(ml100k_dir)
    assert data.matrix.shape[1] > 1000
    ease, pop = EASE(300.0).fit(data), Popularity().fit(data)
    for user in (data.users[5], data.users[123]):  # two in a row: downdates compose
        row = data.matrix[data.user_index[user]]
        ease.forget_rows(row)
        pop.forget_rows(row)
        data = _without(data, user)
    refit = EASE(300.0).fit(data)
    assert np.abs(ease.P - refit.P).max() < 1e-10 * np.abs(refit.P).max()
    assert np.abs(_b64(ease.P) - _b64(refit.P)).max() < 1e-10
    np.testing.assert_array_equal(ease.B, refit.B)
    np.testing.assert_array_equal(pop.counts, Popularity().fit(data).counts)


def test_hybrid_forget_user_matches_a_fit_without_them(ml100k_dir: Path) -> None:
    data = _movielens(ml100k_dir, n_users=200)
    rng = np.random.default_rng(0)
    content = rng.normal(size=(data.n_items, 16)).astype(np.float32)
    hybrid = HybridScorer(tune=False).fit(data, item_content=content)
    gone = data.users[7]
    done = hybrid.forget_user(gone)
    assert done is not None and done["items"] == data.matrix[7].nnz
    assert hybrid.forget_user(gone) is None  # already out
    refit = HybridScorer(tune=False).fit(_without(data, gone), item_content=content)
    rows = data.matrix[[0, 50, 150]]
    ours, theirs = hybrid.score(rows), refit.score(rows)
    for part in ("collaborative", "popularity", "content", "total"):
        np.testing.assert_allclose(ours[part], theirs[part], atol=2e-4, err_msg=part)


@pytest.mark.parametrize("vacuum", [False, True])
def test_scrub_removes_stale_copies_that_secure_delete_alone_leaves(tmp_path: Path, vacuum: bool) -> None:
    """On SQLite builds where ``secure_delete`` is off by default (Debian's is on), rows written earlier
    leave copies in freed pages and page free space; a secure delete of the live rows misses them."""
    from mmrec.events.records import EventRecord
    from mmrec.events.store import EventStore

    with EventStore.open(tmp_path) as store:
        store._conn.execute("PRAGMA secure_delete=OFF")  # how the rows were written on such a build
        for n in range(240):
            store.add_events([EventRecord(USER, ITEMS[n % 4], "view", 0.9, T0 + n)])
            if n % 12 == 0:
                store.add_events([EventRecord("bob", ITEMS[n % 6], "like", None, T0 + n)])
        for n in range(5):  # a profile rewritten as it shrinks frees pages holding older versions
            store.put_profile_blob(USER, f"{USER} {PHRASE}".encode() + b"x" * (20000 - 3000 * n), T0 + n)
            store.put_profile_blob("bob", b"bob" + b"y" * (20000 - 3000 * n), T0 + n)
        assert store.delete_user(USER) == {"events": 240, "comments": 0, "served": 0, "profiles": 1}
        if vacuum:
            assert store.scrub()["wal_truncated"] is True
        else:
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        left = _bytes_found(tmp_path, [USER.encode(), PHRASE.encode()])
        assert (left == []) is vacuum
        assert len(store.events("bob")) == 20 and store.get_profile_blob("bob") is not None


def test_rerunning_a_forget_killed_before_its_scrub_finishes_it(tmp_path: Path) -> None:
    """The delete committed, the process died before VACUUM: the rerun says nothing is held, and scrubs."""
    from mmrec.events.records import EventRecord
    from mmrec.events.store import EventStore

    path = tmp_path / "library"
    Library(path).close()  # an empty library folder
    with EventStore.open(path) as store:
        store._conn.execute("PRAGMA secure_delete=OFF")  # as on SQLite builds without SQLITE_SECURE_DELETE
        for n in range(240):
            store.add_events([EventRecord(USER, ITEMS[n % 4], "view", 0.9, T0 + n)])
            store.add_events([EventRecord("bob", ITEMS[n % 6], "view", 0.5, T0 + n)])
        store.delete_user(USER)
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _bytes_found(path, [USER.encode()])  # copies left by the interrupted forget
    with Library(path, create=False) as lib, pytest.raises(KeyError, match="holds nothing"):
        lib.forget_user(USER)
    assert _bytes_found(path, [USER.encode()]) == []
    with EventStore.open(path) as store:
        assert len(store.events("bob")) == 240
