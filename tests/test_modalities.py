"""The modality table is the one definition of the item modalities (issue 10.6).

Every list of modality names that fusion, search, the store check and training use comes from
``mmrec/modalities.py``; no other source file spells out a list of them, and a name outside the
table is refused wherever fused blocks are laid out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from mmrec import modalities
from mmrec.modalities import MODALITIES, Modality, UnknownModalityError

ROOT = Path(__file__).resolve().parents[1]


def test_the_table_gives_todays_block_order_and_groups() -> None:
    assert modalities.names() == ("frames", "audio", "speech", "text", "tags", "vtags")
    assert modalities.text_blocks() == ("text", "tags", "vtags", "speech")  # a text query's fallback order
    assert modalities.bridge_sources() == ("text", "tags", "speech")
    assert modalities.bridge_inputs() == ("text", "tags", "speech", "vtags")
    assert modalities.bridge_targets() == ("frames", "audio")
    assert modalities.set_modality() == "frames"
    assert {m: modalities.role_of(m) for m in modalities.names()} == {
        "frames": "frames",
        "audio": "audio",
        "speech": "text",
        "text": "text",
        "tags": "text",
        "vtags": "text",
    }


def test_every_copy_is_derived_from_the_table() -> None:
    from mmrec.fusion import bridges, library_training, model
    from mmrec.search import FUSED_BLOCK_ORDER, TEXT_BLOCKS

    assert model.MODALITIES == FUSED_BLOCK_ORDER == modalities.names()
    assert modalities.set_modality() == model.SET_MODALITY
    assert TEXT_BLOCKS == library_training.QUERY_BLOCKS == modalities.text_blocks()
    assert modalities.bridge_sources() == bridges.BRIDGE_SOURCES
    assert modalities.bridge_targets() == bridges.BRIDGE_TARGETS


def _modality_lists(path: Path) -> list[tuple[int, list[str]]]:
    """Tuple/list/set literals and dict keys in a source file naming two or more modalities."""
    known = set(modalities.names())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            elts = node.elts
        elif isinstance(node, ast.Dict):
            elts = [k for k in node.keys if k is not None]
        else:
            continue
        words = [e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if {"video", "image"} & set(words):
            continue  # item kinds ("video", "audio", "image", "text"), not modalities
        if {"title", "transcript"} & set(words):
            continue  # an item's text fields (the full-text index's columns), not modalities
        words = [w for w in words if w in known]
        if len(set(words)) >= 2:
            found.append((node.lineno, words))
    return found


def test_no_source_file_but_the_table_lists_modalities() -> None:
    table = ROOT / "mmrec" / "modalities.py"
    offenders = {
        str(p.relative_to(ROOT)): hits
        for folder in ("mmrec", "pipelines")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if p != table and (hits := _modality_lists(p))
    }
    # ("frames", "audio") as encoder *roles* (the model set's attributes) is not a modality list
    offenders = {
        f: [h for h in hits if set(h[1]) != {"frames", "audio"} or "role" not in _line(ROOT / f, h[0])]
        for f, hits in offenders.items()
    }
    assert {f: h for f, h in offenders.items() if h} == {}
    assert _modality_lists(table)  # the scan does see a list when there is one


def _line(path: Path, lineno: int) -> str:
    return path.read_text(encoding="utf-8").splitlines()[lineno - 1]


def test_block_widths_come_from_the_encoder_roles() -> None:
    from mmrec.search import block_dims

    described = {"frames": {"dim": 1280}, "audio": {"dim": 527}, "text": {"dim": 384}, "speech": {"dim": 0}}
    dims = block_dims(described)
    assert list(dims) == list(modalities.names())
    assert dims == {"frames": 1280, "audio": 527, "speech": 384, "text": 384, "tags": 384, "vtags": 384}
    assert block_dims({"text": {"dim": 384}}) == dict.fromkeys(modalities.text_blocks(), 384)


def test_a_name_outside_the_table_is_refused_where_blocks_are_built() -> None:
    from mmrec.fusion import Fusion, ordered_modalities
    from mmrec.search import BlockLayout

    dims = {"text": 8, "smell": 4}
    for build in (ordered_modalities, BlockLayout, Fusion):
        with pytest.raises(UnknownModalityError, match=r"unknown modalities \['smell'\]"):
            build(dims)
    with pytest.raises(UnknownModalityError):
        modalities.role_of("smell")
    # known names come back in block order whatever order they are given in
    assert modalities.check_names(["vtags", "frames", "text"]) == ["frames", "text", "vtags"]
    layout = BlockLayout({"text": 2, "frames": 3})
    assert layout.modalities == ["frames", "text"] and layout.slices["text"] == slice(3, 5)
    np.testing.assert_allclose(
        layout.contributions(np.array([0, 0, 1, 0.6, 0.8]), np.array([[0, 1, 0, 1, 0]]))[0]["text"], 0.6
    )


def test_rows_that_contradict_themselves_are_refused() -> None:
    with pytest.raises(ValueError, match="query_priority"):
        Modality("captions", "text", text_like=True)
    with pytest.raises(ValueError, match="text-like"):
        Modality("depth", "frames", bridge_source=True)
    with pytest.raises(ValueError, match="non-text"):
        Modality("notes", "text", text_like=True, query_priority=4, bridge_target=True)
    assert len({m.name for m in MODALITIES}) == len(MODALITIES)
