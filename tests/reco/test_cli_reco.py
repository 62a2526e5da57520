"""The reco CLI commands, run with CliRunner on the real stamp library."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmrec.cli.cmd_reco import analyze_cmd, describe_user_cmd, ingest_cmd, profile_cmd, recommend_cmd


@pytest.fixture(scope="module")
def library(stamp_library, tmp_path_factory) -> Path:  # noqa: ANN001
    """A private copy of the stamp library (events.sqlite added here must not leak into other tests)."""
    dst = tmp_path_factory.mktemp("cli") / "lib"
    shutil.copytree(stamp_library.path, dst, ignore=shutil.ignore_patterns("events.sqlite*"))
    return dst


def _json(result) -> dict:  # noqa: ANN001
    assert result.exit_code == 0, result.output + str(result.exception)
    return json.loads(result.stdout)


def test_analyze_text_and_files(tmp_path: Path) -> None:
    runner = CliRunner()
    out = _json(runner.invoke(analyze_cmd, ["这个视频太精彩了", "--json"]))
    (r,) = out["results"]
    assert (
        r["language"] == "zh"
        and r["sentiment"] > 0
        and set(r) == {"text", "language", "sentiment", "keywords"}
    )
    txt = tmp_path / "c.txt"
    txt.write_text("I loved this cute puppy video.\n\nTerrible sound, awful editing.\n")
    res = _json(runner.invoke(analyze_cmd, [str(txt), "--json"]))["results"]
    assert [x["sentiment"] > 0 for x in res] == [True, False]
    bad = tmp_path / "c.csv"
    bad.write_text("comment_id,body\n1,hello\n")
    result = runner.invoke(analyze_cmd, [str(bad), "--json"])
    assert result.exit_code != 0 and "no text column" in str(result.exception)


def test_ingest_profile_recommend_flow(library: Path, stamp_library, tmp_path: Path) -> None:  # noqa: ANN001
    runner = CliRunner()
    liked = stamp_library.by_category["vehicles"][:4]
    rows = ["user_id,item_id,event,value,timestamp"]
    rows += [f"alice,{i},like,,{1700000000 + n}" for n, i in enumerate(liked)]
    rows += ["alice,not-in-library,view,0.9,1700000100", "alice,x,fly,,1700000200"]
    f = tmp_path / "events.csv"
    f.write_text("\n".join(rows) + "\n")
    rep = _json(runner.invoke(ingest_cmd, [str(f), "--library", str(library), "--json"]))
    assert (rep["kind"], rep["added"], rep["duplicates"], rep["profiles_refreshed"]) == ("events", 5, 0, 1)
    assert rep["errors"] == [{"line": 7, "field": "event", "reason": rep["errors"][0]["reason"]}]
    again = _json(runner.invoke(ingest_cmd, [str(f), "--library", str(library), "--json"]))
    assert (again["added"], again["duplicates"]) == (0, 5)

    c = tmp_path / "comments.jsonl"
    c.write_text(
        json.dumps(
            {
                "user_id": "alice",
                "item_id": liked[0],
                "text": "Great truck, I love it!",
                "timestamp": 1700000300,
            }
        )
        + "\n"
    )
    crep = _json(runner.invoke(ingest_cmd, [str(c), "--library", str(library), "--json"]))
    assert (crep["kind"], crep["added"]) == ("comments", 1)

    prof = _json(runner.invoke(profile_cmd, ["alice", "--library", str(library), "--json"]))
    assert prof["n_events"] == 6 and prof["seen"] == 4 and prof["interests"]
    assert "truck" in prof["keywords"]
    assert set(prof["modality_prefs"]) == {"text", "tags"}

    recs = _json(runner.invoke(recommend_cmd, ["alice", "--library", str(library), "-k", "5", "--json"]))[
        "results"
    ]
    assert len(recs) == 5 and not {r["item_id"] for r in recs} & set(liked)
    assert all(r["reasons"] for r in recs)
    human = runner.invoke(recommend_cmd, ["alice", "--library", str(library), "-k", "3"])
    assert human.exit_code == 0 and "interest" in human.stdout

    # Exploration is off by default and, when asked for, visible in the reasons.
    assert not any(x["kind"] == "explore" for r in recs for x in r["reasons"])
    args = ["alice", "--library", str(library), "-k", "6", "--explore", "0.5"]
    explored = _json(runner.invoke(recommend_cmd, [*args, "--json"]))
    assert explored["explore"] == 0.5
    exploring = [r for r in explored["results"] if any(x["kind"] == "explore" for x in r["reasons"])]
    assert exploring and all(
        x["detail"].startswith("exploring") for r in exploring for x in r["reasons"] if x["kind"] == "explore"
    )
    assert "explore: exploring" in runner.invoke(recommend_cmd, args).stdout


def test_describe_user_cold_start(library: Path, stamp_library) -> None:  # noqa: ANN001
    runner = CliRunner()
    unknown = runner.invoke(recommend_cmd, ["bob", "--library", str(library), "--json"])
    assert unknown.exit_code != 0 and "describe-user" in str(unknown.exception)
    _json(
        runner.invoke(describe_user_cmd, ["bob", "I love cats and dogs", "--library", str(library), "--json"])
    )
    recs = _json(runner.invoke(recommend_cmd, ["bob", "--library", str(library), "--json"]))["results"]
    animals = sum(r["item_id"].startswith("animals/") for r in recs)
    assert animals >= 6
    prof = _json(runner.invoke(profile_cmd, ["bob", "--library", str(library), "--json"]))
    assert prof["description"] == "I love cats and dogs" and prof["interests"] == []


def test_missing_library_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(recommend_cmd, ["x", "--library", str(tmp_path / "none")])
    assert result.exit_code != 0 and "no library here" in str(result.exception)
