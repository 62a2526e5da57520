"""``mmrec encode MEDIA_DIR``: encode new and changed media into a library (resumable, incremental)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mmrec.cli.common import device_option, json_option, library_option, models_option, print_json


@click.command("encode")
@click.argument("media_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@library_option
@models_option
@click.option(
    "--metadata",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="CSV or JSONL manifest: path, item_id, title, description, tags (rows without path are text-only items).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Worker processes of the local engine (default: one per CPU; CPUs - 1 with a GPU).",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Items per model batch."
)
@device_option
@click.option("--fail-fast", is_flag=True, help="Stop at the first file that cannot be encoded.")
@click.option("--retry-failed", is_flag=True, help="Try again files that failed before and did not change.")
@click.option(
    "--wait",
    is_flag=True,
    help="If another encode is writing to the library, wait for it instead of stopping with an error.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where files are decoded and encoded: local worker processes, or Ray (pip install 'mmrec[ray]').",
)
@click.option(
    "--address",
    default=None,
    help="With --engine ray: the cluster to join (auto, or ray://HEAD:10001); default: start a local Ray.",
)
@click.option(
    "--mode",
    type=click.Choice(["whole-file", "decode-batched"]),
    default=None,
    help="whole-file: workers decode and encode whole files (CPU); decode-batched: workers decode, "
    "encoders batch across files (GPU). Default: chosen by the device, and printed.",
)
@click.option(
    "--train-fusion",
    "train_fusion",
    type=click.Choice(["off", "auto"]),
    default="off",
    show_default=True,
    help="auto: train the fusion once the library holds enough text + image/audio pairs "
    "(150; see docs/architecture.md). The default fusion is centred on the library either way.",
)
@json_option
def encode(
    media_dir: Path,
    library: Path,
    models: str,
    metadata: Path | None,
    workers: int | None,
    batch_size: int,
    device: str,
    fail_fast: bool,
    retry_failed: bool,
    wait: bool,
    engine: str,
    address: str | None,
    mode: str | None,
    train_fusion: str,
    as_json: bool,
) -> None:
    """Encode every new or changed file under MEDIA_DIR; unchanged files are skipped, deleted ones removed."""
    from encoders.registry import load_models
    from mmrec.api import Library

    load_models(models, device=device)  # a bad model setting stops here, before the library folder is made
    summary = Library(library, models=models, device=device).encode(
        media_dir,
        metadata=metadata,
        workers=workers,
        batch_size=batch_size,
        fail_fast=fail_fast,
        retry_failed=retry_failed,
        progress=not as_json,
        wait=wait,
        engine=engine,
        address=address,
        mode=mode,
        train_fusion=train_fusion,
    )
    if as_json:
        print_json(summary.to_dict())
        return
    console = Console()
    table = Table(title=f"encoded into {library}", show_header=False)
    for name, value in (
        (
            "engine",
            f"{summary.engine}, {summary.mode} mode" if summary.mode else "not started (nothing to encode)",
        ),
        ("encoded", summary.encoded),
        ("skipped (unchanged)", summary.skipped_unchanged),
        ("skipped (failed before)", summary.skipped_failed),
        ("failed", summary.failed),
        ("failed, retried next run", summary.retry_next_run),
        ("aliases (no item of their own)", len(summary.aliases)),
        ("deleted", summary.deleted),
        ("elapsed", f"{summary.elapsed_s:.1f} s ({summary.files_per_s:.2f} files/s)"),
        ("stages", ", ".join(f"{k} {v:.1f}s" for k, v in summary.stages_s.items())),
        ("index", summary.index),
        (
            "fusion",
            f"{summary.fusion.get('action')}: {summary.fusion.get('reason')} ({summary.fusion.get('version')})",
        ),
    ):
        table.add_row(name, str(value))
    console.print(table)
    for path, item_id in summary.aliases[:20]:
        console.print(f"[yellow]alias[/] {path}: same file as item {item_id}")
    for path, reason in summary.failures[:20]:
        console.print(f"[red]failed[/] {path}: {reason}")
    if len(summary.failures) > 20:
        console.print(
            f"... and {len(summary.failures) - 20} more (see `mmrec info --library {library} --failures`)"
        )
