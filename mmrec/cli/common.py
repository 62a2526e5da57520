"""Options and output helpers shared by every ``mmrec`` sub-command."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LIBRARY = "./mmrec-library"


def default_library() -> Path:
    """``$MMREC_LIBRARY`` when set, else ``./mmrec-library``."""
    return Path(os.environ.get("MMREC_LIBRARY", DEFAULT_LIBRARY))


def library_option(func: F) -> F:
    """``--library PATH``: which library folder a command reads or writes."""
    return click.option(
        "--library",
        "library",
        type=click.Path(path_type=Path, file_okay=False),
        default=default_library,
        show_default="$MMREC_LIBRARY or ./mmrec-library",
        help="Library folder.",
    )(func)


def json_option(func: F) -> F:
    """``--json``: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def models_option(func: F) -> F:
    """``--models``: a model profile name or a config file."""
    return click.option(
        "--models",
        default="bundled",
        show_default=True,
        help="Model profile: bundled (offline), hub, or a JSON/TOML config file mapping roles to models.",
    )(func)


def device_option(func: F) -> F:
    """``--device``: where models run."""
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="auto picks CUDA when a GPU is present.",
    )(func)


def print_json(payload: Any) -> None:
    """JSON on stdout, UTF-8 kept readable (Chinese titles stay Chinese)."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
