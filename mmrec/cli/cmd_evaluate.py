"""``mmrec evaluate``: offline evaluation of the recommender against baselines on an interaction dataset,
and of retrieval on a library (``same-label``, ``text-to-item``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mmrec.cli.common import json_option, print_json

PROTOCOL_CHOICES = (
    "ms-recommenders",
    "leave-last-out",
    "cold-items",
    "interactive",
    "same-label",
    "text-to-item",
)
RETRIEVAL = ("same-label", "text-to-item")


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
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="interactive only: rounds of recommendations each simulated user answers.",
)
@click.option(
    "--explore",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.1,
    show_default=True,
    help="interactive only: share of each list the live+explore arm hands to exploration.",
)
@click.option(
    "--library",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="same-label and text-to-item: the library to query.",
)
@click.option(
    "--labels",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="same-label: CSV item_id,label.",
)
@click.option(
    "--queries",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="text-to-item: CSV query,item_id[,language]; several rows per query for several right items.",
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "lexical"]),
    default="hybrid",
    show_default=True,
    help="text-to-item: the search mode.",
)
@json_option
def evaluate(
    dataset: str,
    protocol: str,
    split_by: str | None,
    k: int,
    seeds: tuple[int, ...],
    max_users: int | None,
    rounds: int,
    explore: float,
    library: Path | None,
    labels: Path | None,
    queries: Path | None,
    mode: str,
    as_json: bool,
) -> None:
    """Score mmrec's hybrid recommender against baselines, or (``--protocol interactive``) replay
    rounds of live feedback for three arms: static, live, live with exploration. ``same-label``
    (leave-one-out ``similar`` by item id) and ``text-to-item`` (``search``) measure retrieval on a
    library through the same calls as ``mmrec similar`` and ``mmrec search``."""
    from mmrec.api import evaluate as run

    if protocol == "interactive" and split_by is not None:
        raise click.BadParameter("only the ms-recommenders protocol takes it", param_hint="--split-by")
    if protocol in RETRIEVAL:
        if library is None:
            raise click.BadParameter(f"the {protocol} protocol needs it", param_hint="--library")
        needed, name = (labels, "--labels") if protocol == "same-label" else (queries, "--queries")
        if needed is None:
            raise click.BadParameter(f"the {protocol} protocol needs it", param_hint=name)
    report = run(
        dataset,
        protocol,
        k=k,
        seeds=seeds,
        split_by=split_by,
        max_users=max_users,
        rounds=rounds,
        explore=explore,
        library=library,
        labels=labels,
        queries=queries,
        mode=mode,
    )
    if as_json:
        print_json(report)
    else:
        console = Console()
        if not console.is_terminal:  # piped or captured: keep all metric columns readable
            console = Console(width=200)
        if protocol == "interactive":
            console.print(render_interactive(report))
        elif protocol == "same-label":
            console.print(render_same_label(report))
        elif protocol == "text-to-item":
            console.print(render_text_to_item(report))
        else:
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


def render_interactive(report: dict[str, Any]) -> Table:
    """One row per round, the three arms side by side: hits, nDCG@k, coverage and diversity, then totals."""
    k = report["k"]
    arms = list(report["arms"])
    n_users = report["per_seed"][0]["n_users"] if report.get("per_seed") else 0
    table = Table(
        title=f"{report['dataset']} · interactive · k={k} · {report['rounds']} rounds · explore "
        f"{report['explore']} · {n_users} users · seeds {report['seeds']}",
        caption="hits: mean accepted items per user; cov: catalogue coverage; ILD: intra-list diversity; "
        "total: cumulative hits and coverage, mean nDCG and ILD over rounds",
    )
    table.add_column("round", justify="right")
    for arm in arms:
        for col in ("hits", f"nDCG@{k}", "cov", "ILD"):
            table.add_column(f"{arm}\n{col}", justify="right")
    keys = ("hits", f"ndcg@{k}", "coverage", "intra_list_diversity")
    for r in range(report["rounds"]):
        cells = [f"{report['arms'][a]['rounds'][r][key]:.3f}" for a in arms for key in keys]
        table.add_row(str(r + 1), *cells)
    final_keys = ("cum_hits", f"mean_ndcg@{k}", "cum_coverage", "mean_intra_list_diversity")
    table.add_row(
        "total",
        *(f"{report['arms'][a]['final'][key]:.3f}" for a in arms for key in final_keys),
        style="bold",
        end_section=True,
    )
    return table


def _group_table(title: str, overall: dict[str, Any], groups: dict[str, Any], name: str) -> Table:
    """All queries first (bold), then one row per group; columns are the figures' own keys."""
    table = Table(title=title)
    keys = list(overall)
    table.add_column(name)
    for key in keys:
        table.add_column(key, justify="right")

    def cells(values: dict[str, Any]) -> list[str]:
        return [str(values[key]) if key == "queries" else f"{values[key]:.4f}" for key in keys]

    table.add_row("all", *cells(overall), style="bold", end_section=True)
    for group, values in groups.items():
        table.add_row(group, *cells(values))
    return table


def render_same_label(report: dict[str, Any]) -> Group:
    """Leave-one-out top-1 and P@k per label, then what was skipped and the hubness of the lists."""
    hub = report["hubness"]
    skipped = report["skipped"]
    top = ", ".join(f"{i} ({n})" for i, n in hub["top_items"][:3])
    notes = (
        f"{report['library']}, labels {report['labels']}: {report['items']} items; not asked: "
        f"{skipped['unlabelled']} unlabelled, {skipped['singleton_label']} alone with their label.\n"
        f"Hubness of the top-{hub['k']} lists: the most frequent item is in {hub['max_occurrence']} of "
        f"{hub['lists']} lists ({hub['max_share']:.1%}), k-occurrence skewness {hub['skewness']:.2f}; "
        f"most frequent: {top}"
    )
    table = _group_table(f"same-label · k={report['k']}", report["metrics"], report["per_label"], "label")
    return Group(table, Text(notes))


def render_text_to_item(report: dict[str, Any]) -> Group:
    """R@1/5/10 and MRR over all queries and per language."""
    title = f"text-to-item · mode {report['mode']}"
    table = _group_table(title, report["metrics"], report["per_language"], "language")
    notes = (
        f"{report['library']}, queries {report['queries_file']}: R@k = a right item within the first k "
        f"results; MRR over the first {report['depth']}"
    )
    return Group(table, Text(notes))
