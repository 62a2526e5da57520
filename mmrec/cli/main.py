"""The ``mmrec`` console script: a thin layer over the Python API.

User errors (typed ``MmrecError``s, bad media) print one ``error: ...`` line on stderr and exit
with status 2; nothing else is printed on stdout, so ``--json`` output stays parseable.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from mmrec import __version__
from mmrec.cli.cmd_thumbnails import thumbnails as _thumbnails_command

# Hub libraries must never try the network at run time unless the user allows it explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class MmrecGroup(click.Group):
    """Turns typed errors into one readable line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from encoders.media.errors import MediaError
        from encoders.registry import ModelConfigError
        from mmrec.errors import MmrecError

        try:
            return super().invoke(ctx)
        except (MmrecError, MediaError, ModelConfigError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=MmrecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmrec")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (model loading, index choices).")
def cli(verbose: bool) -> None:
    """mmrec: understand audio/video content and recommend it."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    from mmrec.cli import (
        cmd_check,
        cmd_encode,
        cmd_evaluate,
        cmd_fusion,
        cmd_inspect,
        cmd_library,
        cmd_reco,
    )

    for module in (cmd_inspect, cmd_encode, cmd_library, cmd_fusion, cmd_reco, cmd_evaluate, cmd_check):
        for command in vars(module).values():
            if isinstance(command, click.Command) and command.name:
                cli.add_command(command)
    cli.add_command(__import__("mmrec.cli.cmd_serve", fromlist=["serve_cmd"]).serve_cmd)


_register()
cli.add_command(_thumbnails_command)  # serve-thumbs: fold into _register's list when merging


def main() -> None:
    cli(prog_name="mmrec")


if __name__ == "__main__":
    main()
