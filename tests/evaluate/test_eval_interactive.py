"""The interactive protocol on a MovieLens-100K subset: three arms, feedback through the live path."""

from __future__ import annotations

import json

import pytest

from mmrec.errors import InvalidInputError
from mmrec.evaluate.interactive import ARMS, run_interactive


@pytest.fixture(scope="module")
def report(movielens, movielens_content) -> dict:  # noqa: ANN001
    return run_interactive("movielens-100k", k=10, rounds=3, seeds=(42,), max_users=24, explore=0.2)


def test_three_arms_with_sane_numbers(report: dict) -> None:
    assert report["protocol"] == "interactive" and report["rounds"] == 3 and report["k"] == 10
    assert set(report["arms"]) == set(ARMS) and set(report["baselines"]) == {"static", "live"}
    seed = report["per_seed"][0]
    assert seed["n_users"] == 24 and seed["n_items"] == 1682
    for arm in ARMS:
        rounds = report["arms"][arm]["rounds"]
        assert [r["round"] for r in rounds] == [1.0, 2.0, 3.0]
        cum = [r["cum_hits"] for r in rounds]
        assert cum == sorted(cum) and cum[-1] == pytest.approx(sum(r["hits"] for r in rounds))
        assert all(0.0 <= r["ndcg@10"] <= 1.0 and 0.0 < r["intra_list_diversity"] < 1.0 for r in rounds)
        cov = [r["cum_coverage"] for r in rounds]
        assert cov == sorted(cov) and cov[-1] <= 3 * 24 * 10 / 1682
        # MovieLens users find several of their held-out movies in the first list (random: ~0.15).
        assert 2.0 < rounds[0]["hits"] < 8.0 and 0.3 < rounds[0]["ndcg@10"] < 0.8
    r1 = {arm: report["arms"][arm]["rounds"][0]["hits"] for arm in ARMS}
    assert abs(r1["live"] - r1["static"]) <= 0.5  # no feedback before the first list
    json.dumps(report)


def test_feedback_goes_through_the_live_path(report: dict) -> None:
    arms = report["per_seed"][0]["arms"]
    n_users = report["per_seed"][0]["n_users"]
    assert arms["static"]["served"] == 0 and arms["static"]["events"] == arms["static"]["history_events"]
    for arm in ("live", "live+explore"):
        # every list was recorded as served, every accepted item was stored as an event
        assert arms[arm]["served"] == n_users * 10 * 3
        accepted = round(report["arms"][arm]["final"]["cum_hits"] * n_users)
        assert accepted > n_users and arms[arm]["events"] == arms[arm]["history_events"] + accepted
    assert (
        report["arms"]["live+explore"]["final"]["cum_coverage"]
        > report["arms"]["live"]["rounds"][0]["coverage"]
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="rounds"):
        run_interactive("movielens-100k", rounds=0)
    with pytest.raises(InvalidInputError, match="explore"):
        run_interactive("movielens-100k", explore=0.0)
