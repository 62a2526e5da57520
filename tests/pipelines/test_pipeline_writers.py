"""Worker processes and writer processes, for real: start-up failures, environment failures, and two
encodes on one library (issue 9: "All workers expired" recorded against every file with exit status 0;
two ``mmrec encode`` on one library both encoding every file)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmrec.store import LibraryStore
from pipelines.encode_job import run_encode

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _media(root: Path, data_dir: Path) -> Path:
    media = root / "media"
    media.mkdir()
    for p in sorted((data_dir / "tuxpaint" / "stamps" / "animals" / "marsupials").glob("*.png")):
        shutil.copy(p, media / p.name)
    return media


def _failures(library: Path) -> list[tuple[str, str, float]]:
    with LibraryStore.open(library, create=False) as store:
        return store.failures()


README_EXAMPLE = """
from mmrec import Library

lib = Library({library!r})
summary = lib.encode({media!r}, workers=1, progress=False, frame_count=2, speech=False)
print(json.dumps(summary.to_dict()))
"""


def test_a_script_without_main_guard_is_one_clear_error(tmp_path: Path, data_dir: Path) -> None:
    media = _media(tmp_path, data_dir)
    library = tmp_path / "lib"
    body = README_EXAMPLE.format(library=str(library), media=str(media))
    unguarded = tmp_path / "unguarded.py"
    unguarded.write_text("import json\n" + body)
    out = subprocess.run(
        [sys.executable, str(unguarded)], env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode != 0
    assert "the encode worker processes could not start" in out.stderr
    assert 'put the call under `if __name__ == "__main__":`' in out.stderr
    assert _failures(library) == []  # nothing recorded against the files

    guarded = tmp_path / "guarded.py"
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    guarded.write_text(f'import json\n\nif __name__ == "__main__":\n{indented}\n')
    out = subprocess.run(
        [sys.executable, str(guarded)], env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert (summary["encoded"], summary["failed"], summary["skipped_failed"]) == (3, 0, 0)


def test_environment_failures_are_retried_and_file_failures_stay(tmp_path: Path, data_dir: Path) -> None:
    """A per-file timeout (a loaded machine) is not recorded; a broken file is, and stays skipped."""
    media = _media(tmp_path, data_dir)
    broken = media / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2048))
    library = tmp_path / "lib"
    opts = {"workers": 1, "progress": False, "frame_count": 2, "speech": False}
    # 0.1 ms is far less than any real decode, so the good files time out (an environment failure);
    # the broken file may still be refused as broken first, and then it is its own failure.
    starved = run_encode(media, library, decode_timeout_s=1e-4, **opts)
    broken_first = [Path(p).name for p, _, _ in _failures(library)]
    assert broken_first in ([], ["broken.png"])
    assert starved.encoded + starved.failed == 4
    assert starved.retry_next_run == starved.failed - len(broken_first) >= 1
    timed_out = [r for p, r in starved.failures if Path(p).name not in broken_first]
    assert len(timed_out) == starved.retry_next_run
    assert all("tried again on the next run" in reason for reason in timed_out)
    normal = run_encode(media, library, **opts)
    assert (normal.encoded + starved.encoded, normal.retry_next_run) == (3, 0)
    assert (normal.failed, normal.skipped_failed) == ((0, 1) if broken_first else (1, 0))
    assert [Path(p).name for p, _, _ in _failures(library)] == ["broken.png"]
    again = run_encode(media, library, **opts)
    assert (again.encoded, again.skipped_failed, again.skipped_unchanged) == (0, 1, 3)


def _holder_pid(library: Path) -> int | None:
    try:
        text = (library / ".run.lock").read_text()
        return int(json.loads(text)["pid"]) if text else None
    except (OSError, ValueError, KeyError):
        return None


def _blocked_on_flock(pid: int) -> bool:
    """Whether ``pid`` waits for an flock (the kernel lists waiters with ``->`` in /proc/locks)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and "FLOCK" in line and f" {pid} " in line for line in lines)


def test_a_second_encode_is_refused_and_wait_queues_behind(tmp_path: Path, data_dir: Path) -> None:
    media = _media(tmp_path, data_dir)
    library = tmp_path / "lib"
    cmd = [sys.executable, "-m", "pipelines.encode_job", str(media), str(library), "--workers", "0",
           "--frames", "2", "--no-speech", "--quiet"]  # fmt: skip
    first = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while _holder_pid(library) != first.pid and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _holder_pid(library) == first.pid, (
            first.stderr.read() if first.poll() is not None else "no lock"
        )
        os.kill(first.pid, signal.SIGSTOP)  # hold it mid-run, lock taken
        second = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
        assert second.returncode == 2 and second.stdout == ""
        assert f"another mmrec encode is writing to this library (pid {first.pid}, since " in second.stderr
        assert "Traceback" not in second.stderr and str(library) in second.stderr
        queued = subprocess.Popen(
            [*cmd, "--wait"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 240
        while not _blocked_on_flock(queued.pid) and queued.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _blocked_on_flock(queued.pid)  # it queued behind the first, not after it
        os.kill(first.pid, signal.SIGCONT)
        out1, err1 = first.communicate(timeout=300)
        out3, err3 = queued.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
    assert first.returncode == 0 and queued.returncode == 0, err1 + err3
    s1, s3 = json.loads(out1), json.loads(out3)
    assert (s1["encoded"], s3["encoded"], s3["skipped_unchanged"]) == (3, 0, 3)
    with LibraryStore.open(library, create=False) as store:
        assert store.seq() == 3  # each file committed exactly once


def test_a_held_library_refuses_before_anything_is_written(tmp_path: Path, data_dir: Path) -> None:
    from mmrec.store.library import LibraryBusyError

    media = _media(tmp_path, data_dir)
    library = tmp_path / "lib"
    with LibraryStore.open(library) as store, store.exclusive_run("mmrec encode"):
        before = (library / "catalog.sqlite").read_bytes()
        with pytest.raises(LibraryBusyError) as info:
            run_encode(media, library, workers=0, progress=False, speech=False)
        assert info.value.holder_pid == os.getpid()
        assert (library / "catalog.sqlite").read_bytes() == before
        assert not (library / "manifest.json").read_text().count("frames")  # models not even recorded
