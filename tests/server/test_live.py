"""A real server beside real writers: ``mmrec serve`` answers queries without a single error while
``mmrec encode`` adds files and ``mmrec ingest`` adds events in other processes, and what they
commit is served without a restart. Also the 429 bound on a real socket, and the bind rule."""

from __future__ import annotations

import csv
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from mmrec import Library
from mmrec.cli.main import cli
from mmrec.server import check_bind, create_app

ROOT = Path(__file__).resolve().parents[2]
NEW_STAMPS = {"penguin": "animals", "pizza": "food"}
# A second folder encoded into a library gets ids prefixed with its label (docs/architecture.md,
# "Item identity"), so its files can never replace the first folder's.
PENGUIN, PIZZA = "new:images/penguin.png", "new:images/pizza.png"


def mmrec_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmrec.cli.main", *args]


def child_env() -> dict[str, str]:
    """Children import this checkout (not whatever an editable install points at)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited during start-up"
        try:
            health = httpx.get(f"{base}/health", timeout=5).json()
            assert health["error"] is None, health
            if health["ready"]:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} was not ready after {timeout_s} s")


@pytest.fixture()
def live_library(server_library_path: Path, tmp_path: Path) -> Path:
    path = tmp_path / "library"
    shutil.copytree(server_library_path, path)
    return path


def _query_loop(base: str, stop: threading.Event, outcomes: Counter[str], failures: list[str]) -> None:
    """One client asking what users ask, as fast as it is answered, until told to stop."""
    urls = [
        "/api/search?q=a%20fire%20truck&k=5",
        "/api/items/images/dog.png/similar?k=5",
        "/api/items?limit=20",
        "/api/users/alice/recommendations?k=5",
        "/api/items/images/banana.png",
        "/api/search?q=%E4%B8%80%E5%8F%AA%E7%8B%97&k=5",
    ]
    with httpx.Client(base_url=base, timeout=60) as client:
        n = 0
        while not stop.is_set():
            url = urls[n % len(urls)]
            n += 1
            try:
                r = client.get(url)
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
                continue
            outcomes[str(r.status_code)] += 1
            if r.status_code != 200:
                failures.append(f"{url}: {r.status_code} {r.text[:300]}")


def test_server_keeps_answering_while_other_processes_write(
    live_library: Path, tmp_path: Path, stamps_dir: Path, copy_stamp: Callable[..., Path]
) -> None:
    new_media = tmp_path / "new"
    for name, category in NEW_STAMPS.items():
        copy_stamp(new_media, stamps_dir, name, category)
    events_file = tmp_path / "events.csv"
    with events_file.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "event", "timestamp"])
        writer.writerow(["zoe", "images/apple.png", "like", 1.7e9])
        writer.writerow(["zoe", "images/banana.png", "like", 1.7e9 + 60])

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            mmrec_cmd("serve", "--library", str(live_library), "--port", str(port), "--no-access-log"),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    clients = [
        threading.Thread(target=_query_loop, args=(base, stop, outcomes, failures), daemon=True)
        for _ in range(2)
    ]
    api = httpx.Client(base_url=base, timeout=120)  # correctness, not speed: a busy machine is slow
    try:
        wait_ready(base, server)
        seed = api.post(
            "/api/events", json=[{"user_id": "alice", "item_id": "images/dog.png", "event": "like"}]
        )
        assert seed.status_code == 200 and seed.json()["added"] == 1
        before = api.get("/api/search", params={"q": "a penguin", "k": 3}).json()["results"]
        assert PENGUIN not in [h["item_id"] for h in before]
        assert api.get("/api/users/zoe/recommendations").status_code == 404

        for t in clients:
            t.start()
        encode = subprocess.Popen(
            mmrec_cmd(
                "encode", str(new_media), "--library", str(live_library), "--workers", "1", "--device", "cpu"
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        ingest = subprocess.Popen(
            mmrec_cmd("ingest", str(events_file), "--library", str(live_library), "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        ingest_out, ingest_err = ingest.communicate(timeout=300)
        assert ingest.returncode == 0, ingest_err.decode()
        encode_out, encode_err = encode.communicate(timeout=600)
        assert encode.returncode == 0, encode_err.decode()[-2000:]

        # No restart: the very next calls see the other processes' commits.
        hits = api.get("/api/search", params={"q": "a penguin", "k": 3}).json()["results"]
        assert hits[0]["item_id"] == PENGUIN
        pizza = api.get("/api/search", params={"q": "a slice of pizza", "k": 3}).json()["results"]
        assert pizza[0]["item_id"] == PIZZA
        page = api.get("/api/items", params={"limit": 100}).json()
        assert {PENGUIN, PIZZA} <= {i["item_id"] for i in page["items"]}
        recs = api.get("/api/users/zoe/recommendations", params={"k": 3})
        assert recs.status_code == 200, recs.text
        assert not {"images/apple.png", "images/banana.png"} & {r["item_id"] for r in recs.json()["results"]}
        assert api.get("/api/users/zoe/profile").json()["n_events"] == 2
    finally:
        api.close()
        stop.set()
        for t in clients:
            if t.is_alive():
                t.join(timeout=60)
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert failures == [], failures[:5]
    assert outcomes["200"] >= 30, outcomes  # it really was asked, all along
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, log_text[-3000:]


def test_requests_above_the_bound_get_429(
    live_library: Path, serve_app: Callable[[FastAPI], AbstractContextManager[str]]
) -> None:
    """One request held open (its body half sent) fills a bound of one; the next gets 429 at once."""
    body = b'[{"user_id": "held", "item_id": "images/dog.png", "event": "like"}]'
    with (
        Library(live_library, device="cpu", create=False) as lib,
        serve_app(create_app(lib, max_concurrency=1)) as base,
    ):
        port = int(base.rsplit(":", 1)[1])
        held = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        held.putrequest("POST", "/api/events")
        held.putheader("Content-Type", "application/json")
        held.putheader("Content-Length", str(len(body)))
        held.endheaders()
        held.send(body[:10])
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                deadline = time.monotonic() + 20
                refused = client.get("/api/items")
                while refused.status_code != 429 and time.monotonic() < deadline:
                    refused = client.get("/api/items")
                assert refused.status_code == 429, refused.text
                assert refused.json()["error"]["type"] == "too_many_requests"
                assert refused.headers["retry-after"] == "1"
                assert client.get("/health").status_code == 200  # liveness is never refused
                held.send(body[10:])
                answer = held.getresponse()
                assert answer.status == 200 and b'"added":1' in answer.read()
                assert client.get("/api/items").status_code == 200
        finally:
            held.close()


def test_non_loopback_bind_needs_a_key(live_library: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.org"):
        with pytest.raises(ValueError, match="--api-key"):
            check_bind(host, None)
        check_bind(host, "a-key")
    res = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--library", str(live_library)])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error:") and "--api-key" in res.stderr
