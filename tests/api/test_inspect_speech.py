"""The speech gate's decision as a user sees it: `mmrec inspect FILE` and the item detail."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mmrec import Library
from mmrec.cli.main import cli


def test_inspect_shows_no_transcript_for_big_buck_bunny_and_why(bigbuckbunny: Path) -> None:
    """Whisper hears "Hmm" in the film's music; the gate drops it and inspect says so, with the signals."""
    runner = CliRunner()
    shown = runner.invoke(cli, ["inspect", str(bigbuckbunny), "--device", "cpu", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert report["has_speech"] is False and report["transcript"] is None and report["language"] is None
    gate = report["speech_gate"]
    assert gate["kept"] is False and gate["reason"] != "speech"
    assert set(gate["signals"]) == {
        "no_speech_prob", "avg_logprob", "compression_ratio", "vad_share", "words", "duration_s",
    }  # fmt: skip
    assert gate["signals"]["duration_s"] > 5.0
    assert "speech" not in report["vectors"]

    from mmrec.cli import cmd_inspect

    with cmd_inspect.console.capture() as captured:  # the text rendering of the same report
        cmd_inspect._print_report(report)
    text = " ".join(captured.get().split())
    assert f"transcript: none, dropped: {gate['reason']}" in text
    assert "speech gate: dropped (VAD share" in text


def test_item_detail_carries_the_gate_decision(library: Library) -> None:
    """Every item with audio records the decision; a speech block exists exactly when it was kept."""
    for item_id in ("lena.flac",):
        detail = library.item(item_id)
        gate = detail.speech_gate
        assert gate is not None and isinstance(gate["kept"], bool) and gate["reason"]
        assert gate["kept"] == ("speech" in detail.modalities) == (detail.transcript is not None)
        assert detail.to_dict()["speech_gate"] == gate
    assert library.item("images/dog.png").speech_gate is None  # no audio, nothing to decide
