"""``mmrec evaluate``: offline evaluation of the recommender against baselines on an interaction dataset."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mmrec.cli.common import json_option, print_json

PROTOCOL_CHOICES = ("ms-recommenders", "leave-last-out", "cold-items")


def _parse_seeds(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers, e.g. 42,43,44") from None
    if not seeds:
        raise click.BadParameter("at least one seed is needed")
    return seeds


@click.command("evaluate")
@click.option(
    "--dataset",
    default="movielens-100k",
    show_default=True,
    help="movielens-100k, or a folder with interactions.csv (user_id,item_id,rating,timestamp) "
    "and items.csv (item_id,title,text).",
)
@click.option("--protocol", type=click.Choice(PROTOCOL_CHOICES), default="ms-recommenders", show_default=True)
@click.option(
    "--split-by",
    type=click.Choice(["item", "user"]),
    default=None,
    help="ms-recommenders only: stratify the 75/25 split per item (their benchmark notebook, default) "
    "or per user (their README).",
)
@click.option("--k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="List length.")
@click.option("--seeds", default="42,43,44", show_default=True, callback=_parse_seeds, help="Split seeds.")
@click.option(
    "--max-users", type=click.IntRange(min=1), default=None, help="Evaluate a random subset of users."
)
@json_option
def evaluate(
    dataset: str,
    protocol: str,
    split_by: str | None,
    k: int,
    seeds: tuple[int, ...],
    max_users: int | None,
    as_json: bool,
) -> None:
    """Score mmrec's hybrid recommender and the random, popularity, collaborative and content baselines."""
    from mmrec.evaluate.protocols import run_evaluation

    report = run_evaluation(dataset, protocol, k=k, seeds=seeds, split_by=split_by, max_users=max_users)
    if as_json:
        print_json(report)
    else:
        console = Console()
        if not console.is_terminal:  # piped or captured: keep all metric columns readable
            console = Console(width=200)
        console.print(render_table(report))


def render_table(report: dict[str, Any]) -> Table:
    """One row per model (mmrec first), one column per metric, means over seeds."""
    split = f", split by {report['split_by']}" if report.get("split_by") else ""
    table = Table(
        title=f"{report['dataset']} · {report['protocol']}{split} · k={report['k']} · seeds {report['seeds']}"
    )
    keys = list(report["metrics"])
    table.add_column("model")
    for key in keys:
        table.add_column(key, justify="right")
    rows = [("mmrec", report["metrics"]), *report["baselines"].items()]
    for name, values in rows:
        table.add_row(
            name, *(f"{values[key]:.4f}" for key in keys), style="bold" if name == "mmrec" else None
        )
    return table
