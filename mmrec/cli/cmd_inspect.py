"""``mmrec inspect PATH``: what mmrec understands of one media file.

It runs the same stages as the batch encoder (guarded decode, batched encoders) on a batch of
one, then shows the probe, the sampled frame times, the visual tags, the transcript and its
language (or, from the speech gate, why none was kept, with its signals), and each modality's vector
with the model that produced it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mmrec.cli.common import device_option, json_option, models_option, print_json

console = Console()

HEARD_SHOWN = 80  # characters of a dropped transcript shown (the JSON output keeps it whole)


def _print_report(report: dict[str, Any]) -> None:
    probe = report["probe"]
    console.print(f"[bold]{report['path']}[/bold]")
    console.print(
        f"  kind {probe['kind']} · container {probe['container']} · {probe['duration_s']:.2f} s · "
        f"codecs {', '.join(probe['codecs'])}"
    )
    if probe.get("has_video"):
        console.print(
            f"  video {probe['width']}x{probe['height']} @ {probe['fps']} fps, rotation {probe['rotation']}"
        )
    if probe.get("has_audio"):
        console.print(f"  audio {probe['sample_rate']} Hz, {probe['channels']} channel(s)")
    if report["frames"]:
        times = ", ".join(f"{t:.2f}" for t in report["frames"]["times_s"])
        console.print(f"  frames ({report['frames']['count']}, {report['frames']['reader']}): {times}")
    if report["visual_tags"]:
        console.print("  visual tags: " + ", ".join(f"{lbl} ({s:.2f})" for lbl, s in report["visual_tags"]))
    if report["has_speech"] is not None:
        gate = report.get("speech_gate")
        if report["has_speech"]:
            lang = escape(f"[{report['language']} p={report['language_probability']}]")
            console.print(f"  transcript {lang}: {escape(str(report['transcript']))}")
        elif gate:
            said = str(gate.get("heard") or "")
            said = said if len(said) <= HEARD_SHOWN else said[:HEARD_SHOWN] + "…"  # a looping "Hmmm…"
            heard = f"; heard {said!r}" if said else ""
            console.print(f"  transcript: none, dropped: {escape(str(gate['reason']) + heard)}")
        else:
            console.print("  transcript: no speech detected")
        if gate:
            console.print(f"  speech gate: {'kept' if gate['kept'] else 'dropped'} ({gate_signals(gate)})")
    _print_vectors(report)


def gate_signals(gate: dict[str, Any]) -> str:
    """The gate's signals on one line; a signal that was not measured reads as '-'."""
    s = gate.get("signals") or {}

    def num(key: str, fmt: str) -> str:
        return "-" if s.get(key) is None else format(s[key], fmt)

    return (
        f"VAD share {num('vad_share', '.2f')}, no-speech p {num('no_speech_prob', '.2f')}, "
        f"avg log-prob {num('avg_logprob', '.2f')}, compression {num('compression_ratio', '.2f')}, "
        f"words {s.get('words', 0)}"
    )


def _print_vectors(report: dict[str, Any]) -> None:
    table = Table(title="vectors")
    for col in ("modality", "rows", "dim", "model", "norm"):
        table.add_column(col)
    for modality, v in report["vectors"].items():
        table.add_row(modality, str(v["rows"]), str(v["dim"]), str(v["model"]), str(v["norm"]))
    console.print(table)
    for warning in report["warnings"]:
        console.print(f"  [yellow]warning[/yellow] {warning}")


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@models_option
@device_option
@json_option
@click.option("--frames", "frame_count", type=click.IntRange(1, 256), default=16, show_default=True)
def inspect(path: Path, models: str, device: str, as_json: bool, frame_count: int) -> None:
    """Show what mmrec understands of one media file."""
    from mmrec.api import inspect_file

    report = inspect_file(path, models, device=device, frame_count=frame_count).to_dict()
    print_json(report) if as_json else _print_report(report)
