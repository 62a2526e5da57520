"""``mmrec train-fusion``: learn a library's fusion (centring + text->frames/audio bridges) and re-fuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from mmrec.cli.common import device_option, json_option, library_option, print_json

console = Console(stderr=True)


def _print_report(report: dict[str, Any]) -> None:
    console.print(f"fusion [bold]{report['version']}[/bold]: {report['refused_items']} items re-fused")
    console.print(
        f"trained on {report['train_items']} items, {report['holdout_items']} held out, {report['seconds']} s"
    )
    for target, info in report.get("bridges", {}).items():
        console.print(
            f"bridge text->{target}: {info['pairs']} pairs, loss {info['first']['loss']:.3f} -> "
            f"{info['last']['loss']:.3f}"
        )
    held = report.get("holdout_text_to_image")
    if held:
        before = ", ".join(f"{k} {v:.3f}" for k, v in held["before"].items())
        after = ", ".join(f"{k} {v:.3f}" for k, v in held["after"].items())
        console.print(f"held-out text->image ({held['items']} items): before {before}; after {after}")
    if not report.get("bridges"):
        console.print("no item has both text and frames/audio: no bridge was trained (centring only)")


@click.command("train-fusion")
@library_option
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="Bridge epochs.")
@click.option(
    "--holdout",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of text+frames items held out to report retrieval before/after.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@json_option
def train_fusion_cmd(
    library: Path, epochs: int, holdout: float, seed: int, device: str, as_json: bool
) -> None:
    """Train the library's fusion from its stored vectors, re-fuse every item and rebuild the index."""
    from mmrec.api import Library

    with Library(library, device=device, create=False) as lib:
        report = lib.train_fusion(epochs=epochs, holdout_fraction=holdout, seed=seed)
    if as_json:
        print_json(report)
    else:
        _print_report(report)
