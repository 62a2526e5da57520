"""The public API and the CLI over a real library: real media, bundled models, real queries."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmrec import Library
from mmrec.cli.main import cli
from mmrec.search import SearchFilters


def test_info_counts_items_and_failures(library: Library, media: Path) -> None:
    info = library.info()
    assert info.items == info.by_status["ok"] == 6 + 3  # six stamps, video, audio, article
    assert info.index is not None and info.index.ntotal == info.items
    failures = library.failures()
    assert [Path(f.path).name for f in failures] == ["empty.mp4"]
    assert "empty" in failures[0].reason.lower()


def test_english_text_search_finds_the_captioned_image(library: Library) -> None:
    hits = library.search("a fire truck", k=3).results
    assert hits[0].item_id == "images/firetruck.png"
    assert hits[0].score > hits[1].score
    # Contributions are exact parts of the dense score (hybrid's own score fuses ranks).
    assert hits[0].matched is not None and hits[0].matched.dense_score is not None
    assert sum(hits[0].contributions.values()) == pytest.approx(hits[0].matched.dense_score, abs=1e-4)


def test_chinese_queries_reach_english_and_chinese_items(library: Library) -> None:
    assert library.search("消防车", k=3).results[0].item_id == "images/firetruck.png"
    top = [h.item_id for h in library.search("一只狗", k=3).results]
    assert "images/dog.png" in top
    assert library.search("小猫 宠物", k=1).results[0].item_id == "article-cats"


def test_filters_restrict_kind_and_tag(library: Library) -> None:
    videos = library.search("bicycles on a street", k=5, filters=SearchFilters(kind="video")).results
    assert [h.item_id for h in videos] == ["bikes.mp4"]
    food = library.search("something to eat", k=5, filters=SearchFilters(tag="food")).results
    assert {h.item_id for h in food} == {"images/apple.png", "images/banana.png"}


def test_similar_by_id_excludes_the_item_itself(library: Library) -> None:
    hits = library.similar("images/dog.png", k=4).results
    ids = [h.item_id for h in hits]
    assert "images/dog.png" not in ids and len(ids) == 4
    assert ids[0] == "images/elephant.png"  # the other animal


def test_similar_to_a_file_outside_the_library(library: Library, media: Path, tmp_path: Path) -> None:
    outside = tmp_path / "copy of banana.png"
    shutil.copy(media / "images" / "banana.png", outside)
    response = library.similar(outside, k=2)
    assert response.query["encoded_on_the_fly"] is True
    # Image content only (no sidecar): the same picture must still come first.
    assert response.results[0].item_id == "images/banana.png"
    assert response.results[0].score > 0.5


def test_concurrent_searches_agree(library: Library) -> None:
    queries = ["a fire truck", "一只狗", "an apple", "a bus"] * 3
    expected = {q: [h.item_id for h in library.search(q, k=3).results] for q in set(queries)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda q: (q, [h.item_id for h in library.search(q, k=3).results]), queries))
    for q, ids in got:
        assert ids == expected[q]


def test_cli_json_shapes_and_errors(library: Library) -> None:
    runner = CliRunner()
    lib = str(library.path)
    res = runner.invoke(cli, ["search", "a double decker bus", "-k", "2", "--json", "--library", lib])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["query"] == {"text": "a double decker bus", "mode": "hybrid"}
    first = payload["results"][0]
    assert set(first) >= {"item_id", "path", "title", "score", "contributions"}
    assert first["item_id"] == "images/double_decker_bus.png"

    res = runner.invoke(cli, ["similar", "no/such/item", "--library", lib])
    assert res.exit_code == 2
    assert "error:" in res.stderr and "no/such/item" in res.stderr

    res = runner.invoke(cli, ["items", "--json", "--kind", "image", "--limit", "2", "--library", lib])
    assert res.exit_code == 0, res.output
    page = json.loads(res.stdout)
    assert page["total"] == 6 and len(page["items"]) == 2 and page["items"][0]["path_name"].endswith(".png")

    res = runner.invoke(cli, ["info", "--json", "--failures", "--library", lib])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["failures"][0]["path"].endswith("empty.mp4")

    res = runner.invoke(cli, ["search", "x", "--library", str(library.path.parent / "missing")])
    assert res.exit_code == 2 and "error:" in res.stderr
