"""End to end: real files, bundled models, a tmp library; then re-run, modify, delete."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mmrec.index.library_index import LibraryIndex
from mmrec.store import LibraryStore
from pipelines.encode_job import EncodeSummary, run_encode

FAST = {"workers": 1, "batch_size": 3, "progress": False, "frame_count": 4}


@pytest.fixture(scope="module")
def models():
    import torch

    from encoders.registry import load_models

    torch.set_num_threads(2)
    return load_models("bundled", device="auto")


@pytest.fixture(scope="module")
def encoded(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, models, media_builder
) -> tuple[Path, Path, EncodeSummary]:
    root = tmp_path_factory.mktemp("e2e")
    media = media_builder(root, data_dir)
    manifest = root / "extra.jsonl"
    manifest.write_text('{"item_id": "note-1", "title": "A short note about koalas", "tags": "text;note"}\n')
    library = root / "library"
    summary = run_encode(
        media, library, models=models, metadata=manifest, workers=1, batch_size=3, progress=False
    )
    return media, library, summary


def test_first_run_counts_and_failures(encoded) -> None:
    _media, _library, s = encoded
    assert s.encoded == 6  # 2 stamps, 2 audio clips, 1 video, 1 text-only row
    assert s.failed == 2 and s.deleted == 0
    reasons = {Path(p).name: r for p, r in s.failures}
    assert reasons == {"empty.wav": "empty file", "noise.mp4": "not a media file"}
    assert {"decode", "encode", "fuse", "write"} <= set(s.stages_s)
    assert s.to_dict()["encoded"] == 6


def test_vectors_and_metadata_per_modality(encoded) -> None:
    media, library, _ = encoded
    with LibraryStore.open(library, create=False) as store:
        koala = store.get("koala")
        video = store.find_by_path(str((media / "video" / "bigbuckbunny.mp4").resolve()))
        hello = store.find_by_path(str((media / "sounds" / "hello_en.wav").resolve()))
        note = store.get("note-1")
        assert (
            koala.kind == "image" and video.kind == "video" and hello.kind == "audio" and note.kind == "text"
        )
        (k_frames,) = store.vectors("frames", [koala.key])
        assert k_frames.shape == (1, 1280)
        for modality in ("vtags", "text", "tags"):
            assert store.vectors(modality, [koala.key])[0].shape == (1, 384)
        assert store.vectors("audio", [koala.key]) == [None]
        labels = [label for label, _score in koala.metadata["visual_tags"]]
        assert len(labels) == 5 and all(isinstance(s, float) for _, s in koala.metadata["visual_tags"])
        v_frames, v_audio = store.vectors("frames", [video.key])[0], store.vectors("audio", [video.key])[0]
        assert v_frames.shape[0] > 1 and v_frames.shape[1] == 1280 and v_audio.shape == (1, 512)
        assert (
            "quick brown fox" in hello.metadata["transcript"].lower() and hello.metadata["language"] == "en"
        )
        assert store.vectors("speech", [hello.key])[0].shape == (1, 384)
        # The speech gate: Big Buck Bunny's music gets no speech block, and both decisions are recorded.
        assert store.vectors("speech", [video.key]) == [None] and "transcript" not in video.metadata
        assert (
            video.metadata["speech_gate"]["kept"] is False and hello.metadata["speech_gate"]["kept"] is True
        )
        assert store.vectors("frames", [note.key]) == [None]
        fused = store.fused([koala.key, video.key, hello.key, note.key])
        assert np.allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-4)
        weights = store.attention([koala.key])[0]
        assert set(weights) == {"frames", "vtags", "text", "tags"} and abs(sum(weights.values()) - 1) < 1e-4


def test_rerun_modify_delete(encoded, models, data_dir: Path) -> None:
    media, library, _ = encoded
    again = run_encode(media, library, models=models, **FAST)
    assert (again.encoded, again.failed, again.skipped_unchanged, again.skipped_failed) == (0, 0, 5, 2)

    kangaroo = media / "images" / "animals" / "kangaroo.png"
    with LibraryStore.open(library) as store:
        before = store.vectors("frames", [store.find_by_path(str(kangaroo.resolve())).key])[0]
    shutil.copy(data_dir / "tuxpaint" / "stamps" / "animals" / "marsupials" / "wombat.png", kangaroo)
    (media / "images" / "animals" / "koala.png").unlink()
    (media / "images" / "animals" / "koala.png.json").unlink()  # its sidecar goes with it
    third = run_encode(media, library, models=models, **FAST)
    assert third.encoded == 1 and third.deleted == 1 and third.skipped_unchanged == 3
    with LibraryStore.open(library) as store:
        rec = store.find_by_path(str(kangaroo.resolve()))
        after = store.vectors("frames", [rec.key])[0]
        assert float(before[0] @ after[0]) < 0.99  # re-encoded from the new pixels
        assert store.get("koala") is None
        ok = [r for r in store.items() if r.path]
        assert len(ok) == len({r.path for r in ok}) == 4
        assert (
            third.index == "synced" and len(LibraryIndex.open(store)) == len(ok) + 1
        )  # + the text-only note


def test_query_file_matches_its_library_vector(encoded, models) -> None:
    from pipelines.fusion_select import library_fusion
    from pipelines.query import encode_file_for_query

    media, library, _ = encoded
    clip = media / "sounds" / "koala_call.ogg"
    with LibraryStore.open(library, create=False) as store:
        fusion = library_fusion(store, models)
        rec = store.find_by_path(str(clip.resolve()))
        stored = store.fused([rec.key])[0]
        stored_audio = store.vectors("audio", [rec.key])[0]
    fused, vectors, meta = encode_file_for_query(clip, models, fusion, frame_count=4)
    assert meta["kind"] == "audio" and "audio" in vectors and "frames" not in vectors
    assert float(vectors["audio"][0] @ stored_audio[0]) > 0.999  # batch vs single: same vector
    assert float(fused @ stored) > 0.999


def test_cli_encode_json_and_bad_manifest(encoded, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from mmrec.cli.cmd_encode import encode
    from mmrec.errors import InvalidInputError

    media, library, _ = encoded
    result = CliRunner().invoke(encode, [str(media), "--library", str(library), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # after test_rerun_modify_delete: four media files left, the two bad ones still failed
    assert payload["encoded"] == 0 and payload["skipped_unchanged"] == 4 and payload["skipped_failed"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("path,item_id,title\n,,\n")
    result = CliRunner().invoke(encode, [str(media), "--library", str(library), "--metadata", str(bad)])
    assert isinstance(result.exception, InvalidInputError)
    assert result.exception.field == "item_id" and f"{bad}:2" in str(result.exception)


def test_bad_model_settings_stop_the_run_before_anything_is_recorded(
    encoded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong setting is one clear error, not a failure recorded against every file."""
    from click.testing import CliRunner

    from mmrec.cli.main import cli

    media, library, _ = encoded
    before = (library / "catalog.sqlite").read_bytes()
    monkeypatch.setenv("MMREC_CPU_RUNTIME", "tensorrt")
    result = CliRunner().invoke(cli, ["encode", str(media), "--library", str(library), "--workers", "1"])
    assert result.exit_code == 2
    assert "MMREC_CPU_RUNTIME" in result.output and "'tensorrt' is not one of onnx, torch" in result.output
    fresh = tmp_path / "never-made"
    result = CliRunner().invoke(cli, ["encode", str(media), "--library", str(fresh)])
    assert result.exit_code == 2 and not fresh.exists()
    monkeypatch.delenv("MMREC_CPU_RUNTIME")
    result = CliRunner().invoke(cli, ["encode", str(media), "--library", str(fresh), "--models", "nonesuch"])
    assert result.exit_code == 2 and "nonesuch: unknown model profile" in result.output
    assert not fresh.exists()
    assert (library / "catalog.sqlite").read_bytes() == before  # the existing library was not touched
