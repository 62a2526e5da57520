"""Retrieval protocols (``same-label``, ``text-to-item``): a tiny case counted by hand, then a small
real library of tuxpaint stamps checked against the same figures computed from its fused vectors."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmrec import Library
from mmrec.api import evaluate
from mmrec.cli.cmd_evaluate import evaluate as evaluate_cmd
from mmrec.errors import InvalidInputError, MmrecError
from mmrec.evaluate import metrics as M
from mmrec.evaluate.retrieval import same_label, text_to_item
from mmrec.search import SearchHit, SearchResponse

# ------------------------------------------------------------------ a tiny case counted by hand


@dataclass
class _Record:
    item_id: str
    key: int


@dataclass
class _Store:
    path: Path
    ids: list[str]

    def items(self) -> list[_Record]:
        return [_Record(i, k) for k, i in enumerate(self.ids)]


class FixedLists:
    """A library whose answers are written down, so every figure can be counted by hand."""

    def __init__(self, similar: dict[str, list[str]], search: dict[str, list[str]]) -> None:
        self.store = _Store(Path("fixed"), ["a1", "a2", "a3", "b1", "b2", "c1", "u"])
        self._similar, self._search = similar, search
        self.modes: list[str] = []  # the search mode of every call, in order

    @staticmethod
    def _response(ids: list[str], k: int) -> SearchResponse:
        return SearchResponse(
            {}, [SearchHit(i, None, i, "image", 1.0 - n / 10) for n, i in enumerate(ids[:k])]
        )

    def similar(self, query: str, k: int = 10) -> SearchResponse:
        return self._response(self._similar[query], k)

    def search(self, text: str, k: int = 10, *, mode: str = "hybrid") -> SearchResponse:
        self.modes.append(mode)
        return self._response(self._search[text], k)


SIMILAR = {
    "a1": ["a2", "a3"],  # top-1 right, P@2 1
    "a2": ["b1", "a3"],  # wrong, 1/2
    "a3": ["a1", "b2"],  # right, 1/2
    "b1": ["b2", "a1"],  # right, 1/2
    "b2": ["b1", "u"],  # right, 1/2 (u has no label: a wrong neighbour)
}
SEARCH = {
    "one": ["a2", "a1", "b1"],  # right item at rank 2
    "two": ["b2", "a1"],  # one of its two right items first
    "three": ["a1", "a2", "a3", "b1", "b2", "u", "c1"],  # rank 7
}


def test_same_label_counted_by_hand(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("item_id,label\na1,A\na2,A\na3,A\nb1,B\nb2,B\nc1,C\nu,\n", encoding="utf-8")
    report = same_label(FixedLists(SIMILAR, SEARCH), labels, k=2)
    assert (report.items, report.unlabelled, report.singletons) == (7, 1, 1)  # u unlabelled, c1 alone
    assert report.overall.queries == 5
    assert report.overall.top1 == pytest.approx(4 / 5)
    assert report.overall.precision == pytest.approx((1 + 0.5 + 0.5 + 0.5 + 0.5) / 5)
    a, b = report.per_label["A"], report.per_label["B"]
    assert (a.queries, a.top1, a.precision) == (3, pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (b.queries, b.top1, b.precision) == (2, 1.0, 0.5)
    assert set(report.per_label) == {"A", "B"}
    # k-occurrence over the 5 lists: a1 2, a2 1, a3 2, b1 2, b2 2, c1 0, u 1
    hub = report.hubness
    assert (hub.lists, hub.max_occurrence, hub.max_share) == (5, 2, 0.4)
    counts = np.array([2, 1, 2, 2, 2, 0, 1], dtype=float)
    z = counts - counts.mean()
    assert hub.skewness == pytest.approx(np.mean(z**3) / np.std(counts) ** 3)
    out = report.to_dict()
    assert out["metrics"] == {"queries": 5, "top1": 0.8, "P@2": 0.6}
    assert out["skipped"] == {"unlabelled": 1, "singleton_label": 1}
    assert out["hubness"]["top_items"][0] == ["a1", 2]
    # asking only some items (a held-out share): the others still count as neighbours
    part = same_label(FixedLists(SIMILAR, SEARCH), labels, k=2, queries={"a2", "b2"})
    assert (part.overall.queries, part.overall.top1, part.overall.precision) == (2, 0.5, 0.5)


def test_text_to_item_counted_by_hand(tmp_path: Path) -> None:
    queries = tmp_path / "queries.csv"
    queries.write_text(
        "query,item_id,language\none,a1,en\ntwo,b1,en\ntwo,b2,en\nthree,c1,zh\n", encoding="utf-8"
    )
    lib = FixedLists(SIMILAR, SEARCH)
    report = text_to_item(lib, queries, mode="dense")
    assert report.mode == "dense" and lib.modes == ["dense"] * 3  # the mode reaches Library.search
    assert report.overall.queries == 3
    assert report.overall.recall == {1: pytest.approx(1 / 3), 5: pytest.approx(2 / 3), 10: 1.0}
    assert report.overall.mrr == pytest.approx((1 / 2 + 1 + 1 / 7) / 3)
    en, zh = report.per_language["en"], report.per_language["zh"]
    assert (en.queries, en.recall, en.mrr) == (2, {1: 0.5, 5: 1.0, 10: 1.0}, 0.75)
    assert (zh.queries, zh.recall, zh.mrr) == (1, {1: 0.0, 5: 0.0, 10: 1.0}, pytest.approx(1 / 7))
    assert report.to_dict()["metrics"] == {
        "queries": 3,
        "R@1": 0.3333,
        "R@5": 0.6667,
        "R@10": 1.0,
        "MRR": round((1 / 2 + 1 + 1 / 7) / 3, 4),
    }
    # ranked among a gallery: "one" finds a1 first (a2 is dropped), "three" c1 after a1, b1, b2
    ranked = text_to_item(FixedLists(SIMILAR, SEARCH), queries, gallery={"a1", "b1", "b2", "c1"})
    assert ranked.overall.recall == {1: pytest.approx(2 / 3), 5: 1.0, 10: 1.0}
    assert ranked.per_language["zh"].mrr == 0.25


def test_bad_files_name_the_file_line_and_id(tmp_path: Path) -> None:
    lib = FixedLists(SIMILAR, SEARCH)
    bad = tmp_path / "labels.csv"
    bad.write_text("item_id,label\na1,A\n\nnope.png,A\n", encoding="utf-8")
    with pytest.raises(
        InvalidInputError, match=r"labels\.csv:4: field 'item_id': unknown item id 'nope\.png'"
    ):
        same_label(lib, bad)
    bad.write_text("id,label\na1,A\n", encoding="utf-8")
    with pytest.raises(
        InvalidInputError, match=r"labels\.csv: field 'header': needs the columns item_id,label"
    ):
        same_label(lib, bad)
    bad.write_text("item_id,label\na1,A\na1,B\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"labels\.csv:3: field 'label': item 'a1' already has"):
        same_label(lib, bad)
    bad.write_bytes("item_id,label\na1,\xe7\x8c\xab\n".encode("utf-16"))
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        same_label(lib, bad)
    with pytest.raises(InvalidInputError, match=r"missing\.csv: field 'file': no such file"):
        same_label(lib, tmp_path / "missing.csv")
    queries = tmp_path / "queries.csv"
    queries.write_text("query,item_id,language\none,a1,en\none,a2,zh\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"queries\.csv:3: field 'language'"):
        text_to_item(lib, queries)
    queries.write_text("query,item_id\n,a1\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"queries\.csv:2: field 'query': is empty"):
        text_to_item(lib, queries)
    queries.write_text("query,item_id\none,a1\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="must be one of"):
        text_to_item(lib, queries, mode="fuzzy")


# ------------------------------------------------------------------ a small real library

STAMPS = {
    "animals": ["koala", "kangaroo", "wombat"],
    "food": ["pineapple", "pear", "grapes"],
    "vehicles": ["firetruck", "garbagetruck", "indycar"],
    "plants": ["birch", "holly_leaves"],
}
K = 3


@pytest.fixture(scope="module")
def stamp_library(stamps_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Library:
    media = tmp_path_factory.mktemp("stamps")
    for category, names in STAMPS.items():
        for name in names:
            shutil.copy(next((stamps_dir / category).rglob(f"{name}.png")), media / f"{name}.png")
    lib = Library(tmp_path_factory.mktemp("lib") / "library", device="cpu")
    summary = lib.encode(media, workers=1, progress=False)
    assert summary.failed == 0
    return lib


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every stamp by category, except holly_leaves (left unlabelled): birch is alone with its label."""
    path = tmp_path_factory.mktemp("files") / "labels.csv"
    rows = [f"{n}.png,{c}" for c, names in STAMPS.items() for n in names if n != "holly_leaves"]
    path.write_text("item_id,label\n" + "\n".join(rows) + "\nholly_leaves.png,\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def queries_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "queries.csv"
    path.write_text(
        "query,item_id,language\n"
        "a koala,koala.png,en\n"
        "a fire truck,firetruck.png,en\n"
        "a truck,firetruck.png,en\n"
        "a truck,garbagetruck.png,en\n"
        "菠萝,pineapple.png,zh\n"
        "一棵树,birch.png,zh\n",
        encoding="utf-8",
    )
    return path


def _fused(lib: Library) -> tuple[list[str], np.ndarray]:
    records = [r for r in lib.store.items() if r.key is not None]
    return [r.item_id for r in records], lib.store.fused([int(r.key) for r in records])


def test_same_label_equals_leave_one_out_on_the_fused_vectors(
    stamp_library: Library, labels_file: Path
) -> None:
    report = same_label(stamp_library, labels_file, k=K)
    ids, fused = _fused(stamp_library)
    label = {f"{n}.png": c for c, names in STAMPS.items() for n in names if n != "holly_leaves"}
    scores = fused @ fused.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    asked = [i for i, item in enumerate(ids) if item in label and label[item] != "plants"]
    right = [[label.get(ids[j]) == label[ids[i]] for j in top[i]] for i in asked]
    assert (report.items, report.unlabelled, report.singletons) == (11, 1, 1)
    assert report.overall.queries == 9
    assert report.overall.top1 == pytest.approx(np.mean([r[0] for r in right]))
    assert report.overall.precision == pytest.approx(np.mean([np.mean(r) for r in right]))
    for category in ("animals", "food", "vehicles"):
        rows = [r for i, r in zip(asked, right, strict=True) if label[ids[i]] == category]
        assert report.per_label[category].precision == pytest.approx(np.mean([np.mean(r) for r in rows]))
    assert report.hubness == M.hubness(top[asked], len(ids), K)
    # the figures are those of a working model, not of chance (1/3 of the others share a label)
    assert report.overall.precision > 0.4


def test_text_to_item_equals_ranking_by_the_query_vector(stamp_library: Library, queries_file: Path) -> None:
    report = text_to_item(stamp_library, queries_file)
    ids, fused = _fused(stamp_library)
    right = {
        "a koala": {"koala.png"},
        "a fire truck": {"firetruck.png"},
        "a truck": {"firetruck.png", "garbagetruck.png"},
        "菠萝": {"pineapple.png"},
        "一棵树": {"birch.png"},
    }
    first = {}
    for text, items in right.items():
        order = np.argsort(-(fused @ stamp_library.text_query_vector(text)), kind="stable")
        first[text] = next(r for r, j in enumerate(order, start=1) if ids[j] in items)
    assert report.overall.queries == 5 and report.depth == 100
    for k in (1, 5, 10):
        assert report.overall.recall[k] == pytest.approx(np.mean([r <= k for r in first.values()]))
    assert report.overall.mrr == pytest.approx(np.mean([1 / r for r in first.values()]))
    zh = [first["菠萝"], first["一棵树"]]
    assert report.per_language["zh"].mrr == pytest.approx(np.mean([1 / r for r in zh]))
    assert report.per_language["en"].queries == 3


def test_the_cli_and_the_api_give_the_same_report(
    stamp_library: Library, labels_file: Path, queries_file: Path
) -> None:
    runner = CliRunner()
    lib = str(stamp_library.path)
    args = ["--protocol", "same-label", "--library", lib, "--labels", str(labels_file), "--k", str(K)]
    result = runner.invoke(evaluate_cmd, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == evaluate(protocol="same-label", library=lib, labels=labels_file, k=K)
    table = runner.invoke(evaluate_cmd, args)
    assert table.exit_code == 0 and "animals" in table.output and "skewness" in table.output
    result = runner.invoke(
        evaluate_cmd,
        ["--protocol", "text-to-item", "--library", lib, "--queries", str(queries_file), "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["protocol"] == "text-to-item" and set(out["per_language"]) == {"en", "zh"}
    assert out["metrics"]["MRR"] == round(text_to_item(stamp_library, queries_file).overall.mrr, 4)
    assert not math.isnan(out["metrics"]["R@1"])


def test_cli_refusals(stamp_library: Library, labels_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    lib = str(stamp_library.path)
    missing = runner.invoke(evaluate_cmd, ["--protocol", "same-label", "--library", lib])
    assert missing.exit_code == 2 and "--labels" in missing.output
    with pytest.raises(InvalidInputError, match="'queries': the same-label protocol takes no queries file"):
        evaluate(protocol="same-label", library=lib, labels=labels_file, queries=labels_file)
    with pytest.raises(InvalidInputError, match="'library': only the same-label and text-to-item"):
        evaluate("movielens-100k", "leave-last-out", library=lib)
    with pytest.raises(MmrecError):
        evaluate(protocol="same-label", library=tmp_path / "no-library", labels=labels_file)
    assert not (tmp_path / "no-library").exists()  # evaluation never creates a library
