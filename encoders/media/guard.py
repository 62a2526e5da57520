"""Run a decode in a child process so a hang or a native crash cannot take the caller down.

The child is started with ``forkserver`` (``spawn`` where unavailable): no fork of a threaded
parent. ``fn`` and its arguments must be picklable (module-level functions).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from .errors import DecoderCrashedError, DecodeTimeoutError, MediaError

T = TypeVar("T")


def _context() -> Any:
    """forkserver with the media modules preloaded (children start in ~ms, not a fresh import)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["encoders.media"])  # no effect once the server runs: harmless to repeat
    return ctx


def _child(conn: Connection, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """Child entry: send ("ok", result) or ("err", exception) back, whatever happens in ``fn``."""
    try:
        result = fn(*args, **kwargs)
        message: tuple = ("ok", result)
    except BaseException as exc:  # every failure, SystemExit included, must reach the parent
        message = ("err", exc)
    try:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if message[0] == "err":
            pickle.loads(payload)  # exceptions with odd __init__ pickle but do not unpickle
    except Exception:
        payload = pickle.dumps(("unpicklable", f"{type(message[1]).__name__}: {message[1]}"))
    try:
        conn.send_bytes(payload)
    finally:
        conn.close()


def _label(fn: Callable[..., Any], args: tuple) -> str:
    """The path being decoded: the first argument, or its ``path`` attribute (a task object that
    carries its file), so a crash or a hang names the file; else the function's name."""
    if args and isinstance(args[0], (str, os.PathLike)):
        return os.fspath(args[0])
    path = getattr(args[0], "path", None) if args else None
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    return f"<{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}>"


def run_guarded(fn: Callable[..., T], *args: Any, timeout_s: float = 60.0, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a child process; returns its result or re-raises its exception.

    Raises DecodeTimeoutError when it runs past ``timeout_s`` (the child is killed) and
    DecoderCrashedError when the child dies without answering (signal, abort, os._exit).
    """
    label = _label(fn, args)
    ctx = _context()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child_conn, fn, args, kwargs), daemon=True)
    proc.start()
    child_conn.close()
    try:
        if not parent_conn.poll(timeout_s):
            raise DecodeTimeoutError(label, f"timed out after {timeout_s:g} s; decoder process killed")
        try:
            message = pickle.loads(parent_conn.recv_bytes())
        except (EOFError, OSError):
            proc.join(5.0)
            raise DecoderCrashedError(
                label, f"decoder process died ({_describe_exit(proc.exitcode)})"
            ) from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5.0)
        parent_conn.close()
    kind = message[0]
    if kind == "ok":
        return message[1]
    if kind == "err":
        raise message[1]
    raise MediaError(label, f"child failed with an error that cannot be pickled: {message[1]}")


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
