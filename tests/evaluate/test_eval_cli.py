"""``mmrec evaluate`` through click's test runner on a small real dataset folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmrec.cli.cmd_evaluate import evaluate
from mmrec.errors import InvalidInputError


@pytest.fixture(scope="module")
def small_dataset(movielens, tmp_path_factory) -> Path:
    """MovieLens restricted to its 80 most rated movies: same format as any user folder."""
    folder = tmp_path_factory.mktemp("ml-small")
    ids, counts = np.unique(movielens.items, return_counts=True)
    keep = set(ids[np.argsort(-counts)[:80]].tolist())
    with (folder / "items.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "title", "text"])
        for iid, title, text in zip(movielens.item_ids, movielens.titles, movielens.texts, strict=True):
            if iid in keep:
                w.writerow([iid, title, text])
    with (folder / "interactions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "rating", "timestamp"])
        for row in zip(
            movielens.users, movielens.items, movielens.ratings, movielens.timestamps, strict=True
        ):
            if row[1] in keep:
                w.writerow(row)
    return folder


def test_json_output_has_the_documented_shape(small_dataset: Path) -> None:
    args = ["--dataset", str(small_dataset), "--protocol", "leave-last-out", "--seeds", "7", "--json"]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) >= {"dataset", "protocol", "k", "metrics", "baselines", "seeds", "per_seed"}
    assert report["seeds"] == [7] and report["protocol"] == "leave-last-out"
    assert set(report["baselines"]) == {"random", "popularity", "collaborative", "content"}
    assert report["metrics"]["hit_rate@10"] > report["baselines"]["random"]["hit_rate@10"]


def test_table_output_and_errors(small_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        evaluate, ["--dataset", str(small_dataset), "--protocol", "cold-items", "--seeds", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "mmrec" in result.output and "popularity" in result.output and "recall@10" in result.output
    bad = CliRunner().invoke(evaluate, ["--dataset", str(small_dataset), "--seeds", "a,b"])
    assert bad.exit_code == 2 and "comma-separated integers" in bad.output
    missing = CliRunner().invoke(evaluate, ["--dataset", str(tmp_path / "none")])
    assert isinstance(missing.exception, InvalidInputError) and "not a folder" in str(missing.exception)


def test_interactive_protocol_prints_three_arms(small_dataset: Path) -> None:
    base = ["--dataset", str(small_dataset), "--protocol", "interactive", "--rounds", "2", "--max-users", "6"]
    result = CliRunner().invoke(evaluate, [*base, "--seeds", "3", "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (
        report["protocol"] == "interactive"
        and report["k"] == 5
        and len(report["arms"]["live"]["rounds"]) == 2
    )
    table = CliRunner().invoke(evaluate, [*base, "--seeds", "3", "--k", "5"])
    assert table.exit_code == 0, table.output
    assert "live+explore" in table.output and "static" in table.output and "total" in table.output
    bad = CliRunner().invoke(evaluate, [*base, "--split-by", "user"])
    assert bad.exit_code == 2 and "ms-recommenders" in bad.output
