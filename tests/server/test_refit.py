"""On-demand refits of the collaborative model (``mmrec refit``, ``POST /api/refit``) on a real library:
the model is never saved, so a refit in one process is a signal in events.sqlite that a running
server follows in the background, and ``mmrec refit --server`` asks the server to fit its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mmrec import Library
from mmrec.server import create_app, schemas

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_760_000_000
LIKES = {
    "alice": ["images/dog.png", "images/elephant.png"],
    "bob": ["images/firetruck.png", "images/double_decker_bus.png", "images/dog.png"],
    "carol": ["images/apple.png", "images/elephant.png"],
}
NEW_ITEM = "images/banana.png"  # nobody liked it when the server fitted its model


def _refit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "mmrec.cli.main", "refit", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture()
def library_path(server_library_path: Path, tmp_path: Path) -> Path:
    path = tmp_path / "library"
    shutil.copytree(server_library_path, path)
    return path


def _rows(likes: dict[str, list[str]], start: int = T0) -> list[dict[str, object]]:
    return [
        {"user_id": u, "item_id": i, "event": "like", "timestamp": start + n}
        for u, items in likes.items()
        for n, i in enumerate(items)
    ]


def test_a_refit_elsewhere_reaches_the_running_server(
    library_path: Path, serve_app: Callable[[FastAPI], AbstractContextManager[str]]
) -> None:
    with Library(library_path, device="cpu") as writer:
        writer.add_events(_rows(LIKES))
    with (
        Library(library_path, device="cpu", create=False) as lib,
        serve_app(create_app(lib, api_key="k")) as base,
    ):
        reco = lib.recommender
        first = reco.hybrid.version
        assert NEW_ITEM not in reco.cf_items and lib.events.refits() == 0
        with Library(library_path, device="cpu", create=False) as other:  # as another process would
            other.add_events(_rows({"dave": ["images/apple.png", NEW_ITEM]}, start=T0 + 100))
        # Folding in never gives a new item a column: only a refit does.
        assert NEW_ITEM not in reco.cf_items

        done = _refit_cli("--library", str(library_path), "--json")
        assert done.returncode == 0, done.stderr
        fit = json.loads(done.stdout)
        assert fit["fitted"] and fit["users"] == 4 and fit["items"] == 6 and fit["interactions"] == 9
        assert fit["events"] == 9 and fit["refits_recorded"] == 1 and fit["version"]

        # The server's next request notices the recorded refit and fits again in the background.
        assert httpx.get(f"{base}/api/users/alice/recommendations?k=3", timeout=120).status_code == 200
        lib.wait_for_refit(300)
        assert lib.recommender is reco and reco.hybrid.version != first and NEW_ITEM in reco.cf_items
        assert reco.last_fit is not None and reco.last_fit.n_users == 4

        # --server asks the running server to fit its own model; writes need its key.
        refused = _refit_cli("--server", base)
        assert refused.returncode == 2 and "answered 401" in refused.stderr and "--server" in refused.stderr
        before = reco.hybrid.version
        asked = _refit_cli("--server", base, "--api-key", "k", "--json")
        assert asked.returncode == 0, asked.stderr
        answer = schemas.RefitResult.model_validate(json.loads(asked.stdout))
        assert answer.version_before == before and answer.version == reco.hybrid.version != before
        assert answer.users == 4 and answer.refits_recorded == 2 and answer.pending_events == 0
        # The server recorded its own refit: it does not fit a second time on the next read.
        assert lib.refresh() is False and lib._refitting is None

        human = _refit_cli("--library", str(library_path))
        assert human.returncode == 0, human.stderr
        assert "4 users, 6 items, 9 interactions from 9 events" in human.stdout
        assert "refit #3 recorded" in human.stdout

    unreachable = _refit_cli("--server", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot reach http://127.0.0.1:9/api/refit" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_a_library_without_events_has_nothing_to_refit(library_path: Path) -> None:
    assert not (library_path / "events.sqlite").exists()
    with Library(library_path, device="cpu", create=False) as lib:
        result = lib.refit()
    assert not result.fitted and result.users == 0 and result.version is None
    assert not (library_path / "events.sqlite").exists()  # a refit with nothing to fit writes nothing
    done = _refit_cli("--library", str(library_path))
    assert done.returncode == 0 and "nothing to fit" in done.stdout
