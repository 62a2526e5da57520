"""Search modes over a real library (bundled models): exact words win in lexical and hybrid mode,
Chinese words find Chinese-titled items, each hit says which side matched, and the full-text index
is checked, repaired, and never written by a reader of an older library."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmrec import Library
from mmrec.check import check_library
from mmrec.cli.main import cli
from mmrec.errors import InvalidInputError
from mmrec.search import SEARCH_MODES, SearchFilters
from mmrec.store.library import LexicalIndexMissingError


@pytest.fixture()
def copy(library: Library, tmp_path: Path) -> Path:
    """A private copy of the shared library, settled (its WAL checkpointed by a first open/close)."""
    dst = tmp_path / "lib"
    shutil.copytree(library.path, dst, ignore=shutil.ignore_patterns("events.sqlite*"))
    Library(dst, create=False).close()
    return dst


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_an_exact_title_word_finds_its_item_first(library: Library, mode: str) -> None:
    response = library.search("decker", k=3, mode=mode)
    assert response.query["mode"] == mode
    top = response.results[0]
    assert top.item_id == "images/double_decker_bus.png"
    assert top.matched is not None and top.matched.lexical_rank == 1
    assert top.matched.words == {"title": ["decker"]}
    if mode == "lexical":
        assert [h.item_id for h in response.results] == [top.item_id]  # no other item has the word
        assert top.score == top.matched.lexical_score and top.score > 0
        assert top.contributions == {} and top.matched.dense_rank is None  # no model was needed
    else:  # every hybrid hit carries its dense cosine, split by modality
        for hit in response.results:
            assert hit.matched is not None and hit.matched.dense_score is not None
            assert sum(hit.contributions.values()) == pytest.approx(hit.matched.dense_score, abs=1e-4)


def test_tag_words_and_chinese_words_find_their_items(library: Library) -> None:
    hits = library.search("vehicles", k=5, mode="lexical").results
    assert {h.item_id for h in hits} == {"images/firetruck.png", "images/double_decker_bus.png"}
    assert all(h.matched is not None and h.matched.words == {"tags": ["vehicles"]} for h in hits)
    for mode in ("lexical", "hybrid"):
        cats = library.search("小猫", k=3, mode=mode).results
        assert cats[0].item_id == "article-cats"
        assert cats[0].matched is not None and cats[0].matched.words == {"title": ["小猫"]}
        bus = library.search("公共汽车", k=3, mode=mode).results  # in the stamp's Chinese description
        assert bus[0].item_id == "images/double_decker_bus.png"
        assert bus[0].matched is not None and "公共汽车" in bus[0].matched.words["description"]


def test_hybrid_fuses_both_rankings(library: Library) -> None:
    dense = library.search("a fire truck", k=9, mode="dense").results
    hybrid = library.search("a fire truck", k=9, mode="hybrid").results
    assert hybrid[0].item_id == dense[0].item_id == "images/firetruck.png"
    first = hybrid[0].matched
    assert first is not None and first.dense_rank == 1 and first.lexical_rank == 1
    assert first.words["title"] == ["fire", "truck"]
    assert hybrid[0].score == pytest.approx(2 / 61, abs=1e-6)  # rank 1 on both sides
    scores = [h.score for h in hybrid]
    assert scores == sorted(scores, reverse=True)
    # dense mode is the embedding ranking as before: its score is the cosine, split by modality
    assert [h.matched.dense_rank for h in dense if h.matched] == list(range(1, 10))
    assert sum(dense[0].contributions.values()) == pytest.approx(dense[0].score, abs=1e-4)
    assert all(h.matched is not None and h.matched.words == {} for h in dense)


def test_filters_apply_to_both_sides(library: Library) -> None:
    for mode in SEARCH_MODES:
        hits = library.search("decker bus", k=5, filters=SearchFilters(kind="video"), mode=mode).results
        assert [h.item_id for h in hits] == ([] if mode == "lexical" else ["bikes.mp4"])
    food = library.search("a red apple", k=5, filters=SearchFilters(tag="food"), mode="hybrid").results
    assert {h.item_id for h in food} == {"images/apple.png", "images/banana.png"}
    assert food[0].item_id == "images/apple.png"


def test_a_bad_mode_is_refused_naming_mode(library: Library) -> None:
    with pytest.raises(InvalidInputError) as err:
        library.search("a dog", mode="fuzzy")
    assert err.value.field == "mode" and "fuzzy" in str(err.value)


def test_cli_mode_option(library: Library) -> None:
    runner = CliRunner()
    lib = str(library.path)
    res = runner.invoke(cli, ["search", "decker", "--mode", "lexical", "-k", "2", "--json", "--library", lib])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["query"] == {"text": "decker", "mode": "lexical"}
    hit = payload["results"][0]
    assert hit["item_id"] == "images/double_decker_bus.png"
    assert hit["matched"]["words"] == {"title": ["decker"]} and hit["matched"]["lexical_rank"] == 1
    table = runner.invoke(cli, ["search", "decker", "--library", lib], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "d1 l1: title decker" in table.output
    bad = runner.invoke(cli, ["search", "decker", "--mode", "fuzzy", "--library", lib])
    assert bad.exit_code == 2 and "--mode" in bad.output


def test_check_reports_and_repair_rebuilds_a_damaged_full_text_index(copy: Path) -> None:
    with sqlite3.connect(copy / "catalog.sqlite") as conn:
        conn.execute("UPDATE items_fts SET title = 'zebra' WHERE rowid = (SELECT MIN(rowid) FROM items_fts)")
        conn.execute("DELETE FROM items_fts WHERE rowid = (SELECT MAX(rowid) FROM items_fts)")
    report = check_library(copy)
    assert report.codes() == {"lexical-mismatch"}, [p.message for p in report.problems]
    (problem,) = report.problems
    assert "1 ok items without a row" in problem.message and "1 rows whose words differ" in problem.message
    assert problem.repairable and "--repair" in problem.fix
    repaired = check_library(copy, repair=True)
    assert repaired.ok and all(p.repaired for p in repaired.problems)
    with Library(copy, create=False) as lib:
        assert lib.search("zebra", mode="lexical").results == []
        assert lib.search("decker", k=1, mode="lexical").results[0].item_id == "images/double_decker_bus.png"


def test_a_reader_of_an_older_library_writes_nothing_and_says_how_to_build_the_index(copy: Path) -> None:
    with sqlite3.connect(copy / "catalog.sqlite") as conn:  # what an mmrec before full-text search wrote
        conn.execute("DROP TABLE items_fts")
    Library(copy, create=False).close()
    before = _snapshot(copy)
    with Library(copy, create=False) as lib:
        with pytest.raises(LexicalIndexMissingError, match="mmrec check --library .* --repair"):
            lib.search("decker", mode="lexical")
        response = lib.search("a fire truck", k=2)  # hybrid answers from the dense side alone
        assert response.results[0].item_id == "images/firetruck.png"
        assert "mmrec check" in str(response.query["lexical"])
        assert response.results[0].matched is not None and response.results[0].matched.lexical_rank is None
    assert _snapshot(copy) == before
    report = check_library(copy)
    assert report.codes() == {"lexical-missing"}
    assert check_library(copy, repair=True).ok
    with Library(copy, create=False) as lib:
        assert lib.search("decker", k=1, mode="lexical").results[0].item_id == "images/double_decker_bus.png"
