"""A user's data: ``forget`` (erase everywhere, print the receipt) and ``export-user`` (everything held, as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mmrec.cli.common import json_option, library_option, print_json
from mmrec.errors import LibraryNotFoundError

if TYPE_CHECKING:
    from mmrec.api import Library


def _open(path: Path) -> Library:
    from mmrec.api import Library

    if not path.is_dir():
        raise LibraryNotFoundError(str(path))
    return Library(path, create=False)


@click.command("forget")
@click.argument("user")
@library_option
@json_option
def forget_cmd(user: str, library: Path, as_json: bool) -> None:
    """Erase USER everywhere: events, comments and their analyses, profile and self-description,
    served lists, their share of popularity and of the collaborative model; then scrub the SQLite
    file and its WAL. Prints the erasure receipt. An unknown USER is an error (exit 2)."""
    lib = _open(library)
    try:
        receipt = lib.forget_user(user).to_dict()
    finally:
        lib.close()
    if as_json:
        print_json(receipt)
        return
    removed = receipt["removed"]
    click.echo(f"forgot {receipt['user_id']!r} in {receipt['library']} at {receipt['erased_at_iso']}")
    click.echo(
        "  removed: "
        + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in removed.items())
        + f"; popularity counts of {receipt['popularity_items']} items"
    )
    for m in receipt["models"]:
        if m["version_before"] is None:
            held = ""
        elif m["held_user"]:
            held = f" (version {m['version_before']} held the user, now {m['version_after']})"
        else:
            held = f" (version {m['version_before']} did not hold the user)"
        click.echo(f"  model: {m['model']}: {m['method']}{held}; {m['note']}".rstrip("; "))
    for s in receipt["sqlite"]:
        click.echo(
            f"  {s['file']}: secure_delete, VACUUM, WAL {'truncated' if s['wal_truncated'] else 'NOT truncated'}"
            f" ({s['wal_bytes']} bytes), {s['free_pages']} free pages"
        )
    for line in receipt["not_on_disk"]:
        click.echo(f"  nothing held: {line}")
    click.echo(f"  took {receipt['seconds']:.3f} s")


@click.command("export-user")
@click.argument("user")
@library_option
def export_user_cmd(user: str, library: Path) -> None:
    """Everything held about USER as JSON: events, comments with their analyses, profile summary,
    self-description and served lists. An unknown USER is an error (exit 2)."""
    lib = _open(library)
    try:
        payload = lib.export_user(user).to_dict()
    finally:
        lib.close()
    print_json(payload)
