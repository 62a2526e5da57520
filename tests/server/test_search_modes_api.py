"""``GET /api/search?mode=``: hybrid by default, dense and lexical on request, each hit's ``matched``
valid against the documented schema, a bad mode a 422 naming ``mode``, an older library a 503
that says how to build its full-text index."""

from __future__ import annotations

import shutil
import sqlite3
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmrec import Library
from mmrec.search import SEARCH_MODES
from mmrec.server import create_app, schemas
from mmrec.server.app import MODE


@pytest.fixture(scope="module")
def library(server_library_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    path = tmp_path_factory.mktemp("modes") / "library"
    shutil.copytree(server_library_path, path)
    with Library(path, device="cpu", create=False) as lib:
        yield lib


@pytest.fixture(scope="module")
def client(library: Library) -> TestClient:
    return TestClient(create_app(library), raise_server_exceptions=False)  # no warm-up needed


def test_the_route_offers_exactly_the_library_modes() -> None:
    assert typing.get_args(MODE) == SEARCH_MODES


def test_hybrid_is_the_default_and_reports_what_matched(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": "a fire truck", "k": 3})
    assert r.status_code == 200, r.text
    body = schemas.SearchResponse.model_validate(r.json())
    assert body.query == {"text": "a fire truck", "mode": "hybrid"}
    top = body.results[0]
    assert top.item_id == "images/firetruck.png"
    assert top.matched is not None and top.matched.dense_rank == 1 and top.matched.lexical_rank == 1
    assert top.matched.words["title"] == ["fire", "truck"]
    assert top.matched.dense_score is not None
    assert sum(top.contributions.values()) == pytest.approx(top.matched.dense_score, abs=1e-4)


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_each_mode_finds_a_title_word(client: TestClient, mode: str) -> None:
    r = client.get("/api/search", params={"q": "decker", "k": 2, "mode": mode})
    assert r.status_code == 200, r.text
    body = schemas.SearchResponse.model_validate(r.json())
    assert body.query["mode"] == mode
    top = body.results[0]
    assert top.item_id == "images/double_decker_bus.png" and top.matched is not None
    assert top.matched.words == ({} if mode == "dense" else {"title": ["decker"]})


def test_a_bad_mode_is_a_422_naming_mode(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": "a dog", "mode": "fuzzy"})
    assert r.status_code == 422
    error = schemas.ErrorBody.model_validate(r.json()).error
    assert error.field == "mode" and error.type == "invalid_input"


def test_an_older_library_answers_hybrid_and_says_how_to_build_lexical(
    server_library_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "library"
    shutil.copytree(server_library_path, path)
    with sqlite3.connect(path / "catalog.sqlite") as conn:  # as an mmrec before full-text search wrote it
        conn.execute("DROP TABLE items_fts")
    with Library(path, device="cpu", create=False) as lib:
        client = TestClient(create_app(lib), raise_server_exceptions=False)
        hybrid = client.get("/api/search", params={"q": "a fire truck", "k": 2})
        assert hybrid.status_code == 200 and "mmrec check" in hybrid.json()["query"]["lexical"]
        lexical = client.get("/api/search", params={"q": "decker", "mode": "lexical"})
        assert lexical.status_code == 503
        error = schemas.ErrorBody.model_validate(lexical.json()).error
        assert error.type == "lexical_index_missing" and error.field == "mode"
        assert "mmrec check --repair" in error.message and str(path) not in error.message
