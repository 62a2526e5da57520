"""Every ``mmrec`` command against bad arguments, missing files, bad encodings and damaged libraries.

The commands are listed from the click group, so a new command is covered as soon as it is
registered (its positional arguments must be named in ``ARGUMENTS``, or the test says so). In
process (CliRunner) a raw exception never prints a traceback: it lands in ``result.exception``,
so that is what is checked; a few runs go through a real subprocess and grep for "Traceback".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

from mmrec import Library
from mmrec.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def _damage(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    rng = np.random.default_rng(7)
    if how == "catalog":
        target = dst / "catalog.sqlite"
        data = bytearray(target.read_bytes())
        data[:4096] = rng.bytes(4096)
        target.write_bytes(bytes(data))
        for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
            (dst / extra).unlink(missing_ok=True)
    elif how == "fused":
        target = dst / "vectors" / "fused.f32"
        target.write_bytes(rng.bytes(target.stat().st_size))
    elif how == "checkpoint":
        (target,) = (dst / "fusion").glob("*.pt")
        data = bytearray(target.read_bytes())
        data[64:2048] = rng.bytes(2048 - 64)
        target.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def damaged(library: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("damaged")
    return {how: _damage(library, root / how, how) for how in ("catalog", "fused", "checkpoint")}


def _commands() -> list[str]:
    return sorted(cli.commands)


def _ok_arguments(files: dict[str, Path]) -> dict[str, str]:
    return {
        "media_dir": str(files["empty-media"]),
        "path": str(files["garbage.mp4"]),
        "file": str(files["utf16.csv"]),
        "source": "what a great video",
        "user": "u1",
        "text": "a dog in the park",
        "query": "a1",
    }


PATH_ARGUMENTS = {"media_dir", "path", "file"}


def _positionals(name: str) -> list[str]:
    return [p.name or "" for p in cli.commands[name].params if isinstance(p, click.Argument)]


def _takes_library(name: str) -> bool:
    return any(p.name == "library" for p in cli.commands[name].params)


def _run(args: list[str]) -> Result:
    env = {"MMREC_DEBUG": "", "MMREC_CPU_RUNTIME": os.environ.get("MMREC_CPU_RUNTIME", "")}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=True)


def _assert_clean(result: Result, args: list[str], codes: tuple[int, ...] = (2,)) -> None:
    """No exception escaped (CliRunner would have hidden its traceback), no traceback text, the exit code."""
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    assert escaped is None, f"mmrec {' '.join(args)} raised {escaped!r}"
    assert "Traceback" not in result.output, f"mmrec {' '.join(args)}:\n{result.output}"
    assert result.exit_code in codes, f"mmrec {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    if result.exit_code == 2:
        last = result.output.strip().splitlines()[-1]
        assert last.startswith(("error: ", "Error: ")), result.output


def test_arguments_known(files: dict[str, Path]) -> None:
    """Every positional argument of every command has a value here, so no command escapes the tests."""
    known = _ok_arguments(files)
    for name in _commands():
        unknown = set(_positionals(name)) - set(known)
        assert not unknown, f"mmrec {name}: give test_cli_errors a value for argument(s) {sorted(unknown)}"


@pytest.mark.parametrize("name", _commands())
def test_bad_option_and_missing_library(name: str, files: dict[str, Path], tmp_path: Path) -> None:
    ok = _ok_arguments(files)
    args = [name, *(ok[a] for a in _positionals(name))]
    _assert_clean(_run([*args, "--no-such-option"]), [*args, "--no-such-option"])
    if _takes_library(name) and name != "encode":  # encode creates a missing library
        with_missing = [*args, "--library", str(tmp_path / "no-library-here")]
        _assert_clean(_run(with_missing), with_missing)


@pytest.mark.parametrize("name", [n for n in _commands() if set(_positionals(n)) & PATH_ARGUMENTS])
def test_missing_file_argument(name: str, files: dict[str, Path], library: Path, tmp_path: Path) -> None:
    ok = _ok_arguments(files)
    args = [name]
    for a in _positionals(name):
        args.append(str(tmp_path / "not-there") if a in PATH_ARGUMENTS else ok[a])
    if _takes_library(name):
        args += ["--library", str(library)]
    _assert_clean(_run(args), args)


@pytest.mark.parametrize("name", [n for n in _commands() if set(_positionals(n)) - PATH_ARGUMENTS])
def test_undecodable_arguments(name: str, files: dict[str, Path], library: Path, tmp_path: Path) -> None:
    """A latin-1 byte on a UTF-8 command line arrives as a lone surrogate: one error line, not a crash."""
    ok = _ok_arguments(files)
    args = [name]
    for a in _positionals(name):
        args.append(ok[a] if a in PATH_ARGUMENTS else "caf\udce9")
    if _takes_library(name):
        args += ["--library", str(library)]
    _assert_clean(_run(args), args)


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "latin1.csv"],
        ["analyze", "latin1.txt"],
        ["encode", "empty-media", "--metadata", "latin1-manifest.csv"],
    ],
    ids=["ingest", "analyze", "encode-manifest"],
)
def test_undecodable_files(args: list[str], files: dict[str, Path], library: Path, tmp_path: Path) -> None:
    """A latin-1 file without --encoding is one error naming the file and the byte."""
    full = [files[a].as_posix() if a in files else a for a in args]
    if _takes_library(args[0]):
        full += ["--library", str(tmp_path / "copy" if args[0] == "encode" else library)]
    result = _run(full)
    _assert_clean(result, full)
    assert "latin1" in result.output and "utf-8" in result.output.lower(), result.output


def test_latin1_ingested_with_encoding(files: dict[str, Path], library: Path, tmp_path: Path) -> None:
    lib_copy = shutil.copytree(library, tmp_path / "lib")
    args = ["ingest", str(files["latin1.csv"]), "--library", str(lib_copy), "--encoding", "latin-1", "--json"]
    result = _run(args)
    _assert_clean(result, args, codes=(0,))
    with Library(lib_copy, create=False) as lib:
        assert lib.profile("ren\xe9").n_events == 1


@pytest.mark.parametrize("how", ["catalog", "fused", "checkpoint"])
@pytest.mark.parametrize("name", [n for n in _commands() if _takes_library(n) and n != "serve"])
def test_damaged_library(name: str, how: str, files: dict[str, Path], damaged: dict[str, Path]) -> None:
    """Damaged catalog, fused vectors or fusion checkpoint: a clean refusal or a result, never a crash.

    ``serve`` opens the library lazily and answers through the server's error handler (tests/server).
    Detecting the damage is ``mmrec check``'s job; here nothing may print a traceback.
    """
    ok = _ok_arguments(files)
    args = [name, *(ok[a] for a in _positionals(name)), "--library", str(damaged[how])]
    if name == "encode":
        args += ["--workers", "1"]
    if name == "train-fusion":
        args += ["--epochs", "1"]
    result = _run(args)
    if name == "check":  # finding the damage is its job: exit 1, one PROBLEM line per problem
        assert "PROBLEM [" in result.output
        _assert_clean(result, args, codes=(1,))
    else:
        _assert_clean(result, args, codes=(2,) if how == "catalog" else (0, 2))


def test_reindex_bogus_factory(library: Path, tmp_path: Path) -> None:
    lib_copy = shutil.copytree(library, tmp_path / "lib")
    args = ["reindex", "--library", str(lib_copy), "--factory", "Bogus123"]
    result = _run(args)
    _assert_clean(result, args)
    assert "error: factory 'Bogus123'" in result.output


def test_reindex_says_what_it_built_and_why(library: Path, tmp_path: Path) -> None:
    lib_copy = shutil.copytree(library, tmp_path / "lib")
    result = _run(["reindex", "--library", str(lib_copy)])
    assert result.exit_code == 0, result.output
    n = Library(lib_copy, create=False).items(limit=1).total
    assert f"index rebuilt: Flat, {n} vectors of" in result.output
    assert f"why: {n} vectors < 50000: exact search" in result.output
    named = _run(["reindex", "--library", str(lib_copy), "--factory", "HNSW32,Flat", "--json"])
    assert (
        named.exit_code == 0
        and '"choice": null' in named.output
        and '"factory": "HNSW32,Flat"' in named.output
    )


def test_missing_hub_folder(files: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text('{"text": "%s"}' % (tmp_path / "no-such-model"), encoding="utf-8")
    args = ["encode", str(files["empty-media"]), "--library", str(tmp_path / "lib"), "--models", str(config)]
    args += ["--metadata", str(files["manifest.jsonl"])]
    result = _run(args)
    _assert_clean(result, args)
    assert "no-such-model" in result.output and "does not exist" in result.output


def _subprocess(args: list[str], debug: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMREC_DEBUG": "1" if debug else ""}
    return subprocess.run(
        [sys.executable, "-m", "mmrec.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize(
    "case",
    ["bogus-factory", "damaged-catalog", "latin1-ingest", "garbage-media"],
)
def test_real_process_prints_one_error_line(
    case: str, files: dict[str, Path], library: Path, damaged: dict[str, Path], tmp_path: Path
) -> None:
    args = {
        "bogus-factory": ["reindex", "--library", str(damaged["fused"]), "--factory", "Bogus123"],
        "damaged-catalog": ["info", "--library", str(damaged["catalog"])],
        "latin1-ingest": ["ingest", str(files["latin1.csv"]), "--library", str(library)],
        "garbage-media": ["inspect", str(files["garbage.mp4"])],
    }[case]
    proc = _subprocess(args)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]
    assert proc.stderr.startswith("error: "), proc.stderr


def test_debug_shows_traceback(damaged: dict[str, Path]) -> None:
    proc = _subprocess(["info", "--library", str(damaged["catalog"])], debug=True)
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_unexpected_exception_is_one_line() -> None:
    """A bug (any exception that is not an MmrecError) is one error line with the hint, exit 1."""
    from mmrec.cli.main import MmrecGroup

    @click.group(cls=MmrecGroup)
    def group() -> None:
        pass

    @group.command()
    def broken() -> None:
        {}["missing"]  # a real KeyError, as a bug would raise

    result = CliRunner().invoke(group, ["broken"], env={"MMREC_DEBUG": ""})
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: unexpected KeyError: 'missing'. This is a bug in mmrec: rerun with MMREC_DEBUG=1 "
        "to see the traceback and report it with that output"
    )
    debug = CliRunner().invoke(group, ["broken"], env={"MMREC_DEBUG": "1"})
    assert "Traceback (most recent call last)" in debug.output and debug.exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--dataset", "{missing}"],
        ["encode", "{media}", "--metadata", "{missing}", "--library", "{tmp}/lib"],
        ["inspect", "{garbage}"],
        ["analyze", "{missing}.jsonl"],
    ],
    ids=["evaluate-dataset", "encode-metadata", "inspect-garbage", "analyze-text"],
)
def test_missing_or_bad_option_files(args: list[str], files: dict[str, Path], tmp_path: Path) -> None:
    """Files named by options, and a media file of random bytes: one error line, exit 2 (analyze takes a
    path that is not there as the text itself, so it succeeds)."""
    values = {
        "missing": str(tmp_path / "not-there"),
        "media": str(files["empty-media"]),
        "tmp": str(tmp_path),
        "garbage": str(files["garbage.mp4"]),
    }
    full = [a.format(**values) for a in args]
    _assert_clean(_run(full), full, codes=(0,) if args[0] == "analyze" else (2,))
