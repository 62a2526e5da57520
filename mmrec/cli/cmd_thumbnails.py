"""``mmrec thumbnails``: give an existing library the preview pictures newer encodes make themselves."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mmrec.cli.common import library_option
from mmrec.store.thumbnails import BackfillStep

SHOWN_FAILURES = 20


@click.command("thumbnails")
@library_option
@click.option("--force", is_flag=True, help="Redraw every thumbnail, not only the missing ones.")
@click.option(
    "--workers", type=click.IntRange(min=0), default=None, help="Decode processes (default: one per CPU)."
)
def thumbnails(library: Path, force: bool, workers: int | None) -> None:
    """Draw thumbnails for the library's media items that have none (resumable; bad files are reported)."""
    from mmrec.api import Library

    console = Console(stderr=True)
    failures: list[BackfillStep] = []
    t0 = time.perf_counter()
    with (
        Library(library, create=False) as lib,
        Progress(
            TextColumn("[bold]thumbnails[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("", total=None)

        def step(s: BackfillStep) -> None:
            if not s.ok:
                failures.append(s)
            bar.update(task, completed=s.done, total=s.total, description=f"failed {len(failures)}")

        made = lib.backfill_thumbnails(force=force, workers=workers, progress=step)
        with_thumbnail = len(lib.store.thumbnail_keys())
    out = Console()
    table = Table(title=f"thumbnails in {library}", show_header=False)
    for name, value in (
        ("made", made),
        ("failed", len(failures)),
        ("items with a thumbnail", with_thumbnail),
        ("elapsed", f"{time.perf_counter() - t0:.1f} s"),
    ):
        table.add_row(name, str(value))
    out.print(table)
    for s in failures[:SHOWN_FAILURES]:
        out.print(f"[red]failed[/] {s.item_id} ({s.path}): {s.reason}")
    if len(failures) > SHOWN_FAILURES:
        out.print(f"... and {len(failures) - SHOWN_FAILURES} more")
