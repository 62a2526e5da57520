"""The ``mmrec`` console script: a thin layer over the Python API.

User errors (typed ``MmrecError``s: bad media, arguments, files, libraries) print one ``error: ...``
line on stderr and exit with status 2; nothing else is printed on stdout, so ``--json`` output stays
parseable. Any other exception is a bug: one ``error:`` line too (exit 1), and ``MMREC_DEBUG=1``
prints the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import click

from mmrec import __version__
from mmrec.cli.cmd_thumbnails import thumbnails as _thumbnails_command

# Hub libraries must never try the network at run time unless the user allows it explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


DEBUG_ENV = "MMREC_DEBUG"
# A typed error the user can act on (bad argument, file, library), as click's usage errors.
USER_ERROR_EXIT = 2
INTERNAL_ERROR_EXIT = 1  # anything else is a bug in mmrec


def debug_enabled() -> bool:
    """``MMREC_DEBUG=1`` (or any value but empty/0/false/no) shows tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def error_line(exc: BaseException) -> str:
    """The one ``error: ...`` line printed for ``exc`` (newlines folded so it stays one line)."""
    from encoders.base import MmrecError

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, MmrecError):
        return f"error: {text}"
    if isinstance(exc, OSError) and exc.strerror:
        # The environment refused (disk full, permission, a file that vanished): name the file.
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"error: {where}{exc.strerror}"
    return (
        f"error: unexpected {type(exc).__name__}: {text}. This is a bug in mmrec: rerun with "
        f"{DEBUG_ENV}=1 to see the traceback and report it with that output"
    )


def exit_code(exc: BaseException) -> int:
    """2 for errors the user can act on (typed errors, refusals by the OS), 1 for bugs."""
    from encoders.base import MmrecError

    if isinstance(exc, MmrecError) or (isinstance(exc, OSError) and exc.strerror):
        return USER_ERROR_EXIT
    return INTERNAL_ERROR_EXIT


class MmrecGroup(click.Group):
    """Turns every error into one readable ``error:`` line on stderr instead of a traceback.

    Typed errors (``MmrecError``: media, hub, model config, fusion, index, library, input) and OS
    refusals exit with 2; anything else is a bug and exits with 1 with a hint to rerun with
    ``MMREC_DEBUG=1``, which prints the traceback before the line. Click's own exits and usage
    errors pass through untouched.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse arguments that are not valid UTF-8 (Python carries such bytes as lone surrogates,
        which would fail deep inside a model or SQLite)."""
        for arg in args:
            raw = arg.encode("utf-8", "surrogateescape")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = raw.decode("utf-8", "backslashreplace")
                raise click.UsageError(
                    f"argument {shown!r} is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); "
                    "use a UTF-8 terminal or locale",
                    ctx,
                ) from None
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            click.echo(error_line(exc), err=True)
            sys.exit(exit_code(exc))


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
for _command in ("forget_cmd", "export_user_cmd"):  # harden-forget
    cli.add_command(getattr(__import__("mmrec.cli.cmd_privacy", fromlist=[_command]), _command))


def main() -> None:
    cli(prog_name="mmrec")


if __name__ == "__main__":
    main()
