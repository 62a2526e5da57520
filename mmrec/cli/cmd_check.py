"""``mmrec check [--repair] [--json]``: verify a library's files against each other; repair what is derived."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mmrec.cli.common import json_option, library_option, print_json


@click.command("check")
@library_option
@click.option(
    "--repair", is_flag=True, help="Rebuild what can be derived (index, fused vectors, profiles, ...)."
)
@click.option(
    "--models",
    default=None,
    help="With --repair: the model profile the library was encoded with, when its manifest is gone and "
    "the catalog holds no copy of it.",
)
@json_option
def check_cmd(library: Path, repair: bool, models: str | None, as_json: bool) -> None:
    """Verify the catalog, vector files, fusion, index, manifest, thumbnails and profiles.

    Exit status 0 when nothing is wrong (or everything was repaired), 1 when problems remain.
    """
    from mmrec.check import check_library, format_report
    from mmrec.errors import LibraryNotFoundError
    from mmrec.store.library import CATALOG

    if not (library / CATALOG).exists() and not library.is_dir():
        raise LibraryNotFoundError(str(library))
    if repair and models:
        _restore_manifest(library, models)
    report = check_library(library, repair=repair, thumbnails=_thumbnails if repair else None)
    if as_json:
        print_json(report.to_dict())
    else:
        click.echo(format_report(report))
    sys.exit(0 if report.ok else 1)


def _thumbnails(store: object) -> object:
    from pipelines.thumbnails import backfill_thumbnails

    return backfill_thumbnails(store)  # type: ignore[arg-type]


def _restore_manifest(library: Path, profile: str) -> None:
    """A manifest gone with no copy in the catalog: rebuild it from the given model profile."""
    from encoders.registry import load_models
    from mmrec.check import restore_manifest_models
    from mmrec.errors import LibraryError
    from mmrec.store import LibraryStore

    store = LibraryStore.open(library, create=False, damaged_ok=True)
    try:
        try:
            if store.manifest().get("models"):
                return
        except LibraryError:
            pass
        if store.manifest_copy():
            return  # the repair restores it from the copy
        restore_manifest_models(store, load_models(profile, device="cpu").describe(), profile)
    finally:
        store.close()
