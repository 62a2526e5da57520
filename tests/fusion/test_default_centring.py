"""The default fusion centred on the library's own statistics, on a small real library.

Captioned tuxpaint stamps (images + titles) and labelled tuxpaint sound effects (audio only), encoded
once per module with the bundled models; the fusion is then refreshed the way ``mmrec encode`` does.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mmrec import Library
from mmrec.fusion import DEFAULT_VERSION, Fusion
from mmrec.fusion.centring import GROWTH, MIN_PER_MODALITY, RAW_QUERY_BLOCKS, centring_due, modality_means
from mmrec.fusion.library_training import load_checkpoint, paired_keys
from pipelines.fusion_select import library_fusion, refresh_library_fusion

# stamp names (found anywhere under stamps/ with their caption)
STAMPS = ["elephant", "giraffe", "dog", "duck", "firetruck", "plane", "banana", "pizza", "rose", "basketball"]
# label -> sound effects (tuxpaint stamp sounds; labels are the stamp category)
SOUNDS = {
    "birds": ["animals/birds/crow", "animals/birds/duck", "animals/birds/owl", "animals/birds/rooster"],
    "music": [
        "hobbies/music/string/cello",
        "hobbies/music/string/violin",
        "hobbies/music/wind/bassoon",
        "hobbies/music/percussion/drumkit",
    ],
    "bovines": [
        "animals/mammals/bovines/cow",
        "animals/mammals/bovines/sheep",
        "animals/mammals/bovines/goat",
        "animals/mammals/bovines/bull",
    ],
}


def _caption(png: Path) -> str:
    return png.with_suffix(".txt").read_text(encoding="utf-8").splitlines()[0].strip()


def _copy_stamps(stamps_dir: Path, names: list[str], media: Path) -> int:
    n = 0
    for name in names:
        png = next(
            (p for p in sorted(stamps_dir.rglob(f"{name}.png")) if p.with_suffix(".txt").is_file()), None
        )
        if png is None:
            continue
        dest = media / "images" / f"{png.stem}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dest)
        (media / "images" / f"{dest.name}.json").write_text(
            json.dumps({"title": _caption(png)}), encoding="utf-8"
        )
        n += 1
    return n


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, stamps_dir: Path) -> tuple[Library, dict[str, str]]:
    media = tmp_path_factory.mktemp("media")
    labels: dict[str, str] = {}
    for label, names in SOUNDS.items():
        for name in names:
            src = stamps_dir / f"{name}.ogg"
            if src.is_file():
                dest = media / "sounds" / label / src.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                labels[f"sounds/{label}/{src.name}"] = label
    assert _copy_stamps(stamps_dir, STAMPS, media) >= 8
    untitled = next(p for p in sorted(stamps_dir.rglob("*.png")) if p.stem not in STAMPS)
    (media / "untitled").mkdir()
    shutil.copyfile(untitled, media / "untitled" / "stamp.png")  # image only: frames + visual tags
    lib = Library(tmp_path_factory.mktemp("lib") / "library", models="bundled", device="cpu")
    # speech=False: the sound effects get no (hallucinated) transcript, as the speech gate decides at
    # encode time; with the recogniser's "transcripts" stored, fusion falls below raw audio (see
    # scripts/eval_sound_similarity.py --variants).
    # refresh_fusion=False: the tests below take the refresh step by hand
    lib.encode(media, workers=0, progress=False, speech=False, refresh_fusion=False)
    return lib, labels


def test_encode_leaves_default_then_refresh_centres_and_records_the_statistics(
    built: tuple[Library, dict[str, str]],
) -> None:
    lib, _ = built
    assert lib.store.fusion_version() in (None, DEFAULT_VERSION)  # encode alone: the plain default
    keys = [int(r.key) for r in lib.store.items()]
    before = lib.store.fused(keys).copy()
    refresh = refresh_library_fusion(lib.path, device="cpu")
    assert refresh.action == "centred", refresh
    assert refresh.version.startswith("centred-") and refresh.items == len(keys)
    # recorded atomically with the rows: catalog, every item, manifest mirror
    assert lib.store.fusion_version() == refresh.version == lib.store.manifest()["fusion_version"]
    with sqlite3.connect(lib.path / "catalog.sqlite") as conn:
        versions = {row[0] for row in conn.execute("SELECT fusion_version FROM items WHERE status='ok'")}
    assert versions == {refresh.version}
    fusion = load_checkpoint(lib.path / "fusion" / f"{refresh.version}.pt", refresh.version, "cpu")
    assert fusion.origin == "centred" and fusion.bridges is None and fusion.fills is None
    assert fusion.stats is not None and fusion.stats["items"] == len(keys)
    # the centres are the library's own per-modality means of its stored vectors
    expected = modality_means(lib.store, keys, dict(fusion.dims))
    assert set(fusion.centers) == set(expected.centers)
    for m, c in expected.centers.items():
        np.testing.assert_allclose(fusion.centers[m], c, atol=1e-5)
        assert expected.counts[m] >= MIN_PER_MODALITY or m in RAW_QUERY_BLOCKS
    # stored rows are what this fusion makes of the stored vectors, and they moved
    after = lib.store.fused(keys)
    items = [
        {m: v for m in fusion.modalities if (v := lib.store.vectors(m, [k])[0]) is not None} for k in keys
    ]
    np.testing.assert_allclose(after, fusion.fuse(items)[0], atol=1e-5)
    assert not np.allclose(after, before)
    assert lib.check().ok


def test_queries_are_centred_like_items(built: tuple[Library, dict[str, str]], tmp_path: Path) -> None:
    lib, labels = built
    if lib.store.fusion_version() in (None, DEFAULT_VERSION):
        refresh_library_fusion(lib.path, device="cpu")
    clip = "untitled/stamp.png"
    outside = tmp_path / "again.png"
    shutil.copyfile(lib.store.get(clip).path, outside)  # type: ignore[union-attr, arg-type]
    with Library(lib.path, create=False, device="cpu") as reader:
        assert set(reader.fusion.centers) >= {"frames", "text", "vtags"}, "readers load the centred fusion"
        assert "audio" not in reader.fusion.centers
        assert set(reader.fusion.raw_query_blocks) == {"text", "tags", "vtags", "speech"}
        # a file encoded on the fly is centred like the stored items (frames, visual tags): its own
        # copy scores 1, and the other images, alike before centring, are far below it
        hits = reader.similar(outside, k=3).results
        assert hits[0].item_id == clip and hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert hits[1].score < 0.6, [(h.item_id, h.score) for h in hits]
        search = reader.search("a fire truck", k=3).results
        assert search[0].item_id == "images/firetruck.png", [h.item_id for h in search]


def test_centring_spreads_image_cosines(built: tuple[Library, dict[str, str]]) -> None:
    lib, labels = built
    if lib.store.fusion_version() in (None, DEFAULT_VERSION):
        refresh_library_fusion(lib.path, device="cpu")
    keys = [int(r.key) for r in lib.store.items() if r.item_id.startswith("images/")]  # type: ignore[arg-type]
    dims = dict(lib.fusion.dims)
    items = [{m: v for m in dims if (v := lib.store.vectors(m, [k])[0]) is not None} for k in keys]
    plain = Fusion(dims, device="cpu").fuse(items)[0]
    centred = lib.store.fused(keys)
    off = ~np.eye(len(keys), dtype=bool)
    # anisotropy: every pair of images looks alike before centring, not after
    assert float((plain @ plain.T)[off].mean()) > 0.5
    assert abs(float((centred @ centred.T)[off].mean())) < 0.2


def test_audio_neighbours_at_least_as_good_as_raw(built: tuple[Library, dict[str, str]]) -> None:
    lib, labels = built
    if lib.store.fusion_version() in (None, DEFAULT_VERSION):
        refresh_library_fusion(lib.path, device="cpu")
    ids = list(labels)
    keys = [int(lib.store.get(i).key) for i in ids]  # type: ignore[union-attr, arg-type]
    raw = np.stack([v[0] / np.linalg.norm(v[0]) for v in lib.store.vectors("audio", keys)])  # type: ignore[index]
    scores = raw @ raw.T
    np.fill_diagonal(scores, -np.inf)
    raw_top1 = np.mean(
        [labels[ids[int(np.argmax(row))]] == labels[q] for q, row in zip(ids, scores, strict=True)]
    )
    fused_top1 = np.mean([labels.get(lib.similar(q, k=1).results[0].item_id) == labels[q] for q in ids])
    assert fused_top1 >= raw_top1, (fused_top1, raw_top1)
    assert fused_top1 > 1 / len(SOUNDS)  # and better than chance


def test_refresh_is_a_no_op_until_the_library_doubles(
    built: tuple[Library, dict[str, str]], stamps_dir: Path, tmp_path: Path
) -> None:
    lib, _ = built
    refresh_library_fusion(lib.path, device="cpu")
    again = refresh_library_fusion(lib.path, device="cpu")
    assert again.action == "none", again
    fusion = library_fusion(lib.store, lambda: lib.models, "cpu")
    n = int(fusion.stats["items"])  # type: ignore[index]
    counts = {m: int(v["items"]) for m, v in lib.store.stats()["modalities"].items() if m in fusion.dims}
    assert centring_due(fusion, n, counts) is None
    assert centring_due(fusion, int(GROWTH * n) - 1, counts) is None
    assert centring_due(fusion, int(GROWTH * n), counts) is not None
    assert centring_due(fusion, n // int(GROWTH), counts) is not None  # shrunk to half


def test_growth_recentres_from_stored_vectors(
    tmp_path_factory: pytest.TempPathFactory, built: tuple[Library, dict[str, str]], stamps_dir: Path
) -> None:
    lib, _ = built
    copy = tmp_path_factory.mktemp("grown") / "library"
    shutil.copytree(lib.path, copy)
    with Library(copy, create=False, device="cpu") as grown:
        if grown.store.fusion_version() in (None, DEFAULT_VERSION):
            refresh_library_fusion(copy, device="cpu")
        old = grown.store.fusion_version()
        n = grown.store.count_items()
        extra = tmp_path_factory.mktemp("more")
        others = [p.stem for p in sorted(stamps_dir.rglob("*.png")) if p.with_suffix(".txt").is_file()]
        others = [name for name in dict.fromkeys(others) if name not in STAMPS]
        added = _copy_stamps(stamps_dir, others[: n + 2], extra)
        grown.encode(extra, workers=0, progress=False, refresh_fusion=False)
        assert grown.store.fusion_version() == old  # new items were fused with the recorded centres
        refresh = refresh_library_fusion(copy, device="cpu")
        assert refresh.action == "centred" and "items" in refresh.reason, refresh
        assert refresh.version != old and refresh.items >= n + added - 2
        assert not (copy / "fusion" / f"{old}.pt").exists()  # the old checkpoint went with the switch
        assert grown.check().ok


def test_train_fusion_auto_waits_for_enough_pairs(
    tmp_path_factory: pytest.TempPathFactory, built: tuple[Library, dict[str, str]]
) -> None:
    lib, _ = built
    copy = tmp_path_factory.mktemp("auto") / "library"
    shutil.copytree(lib.path, copy)
    keys = [int(r.key) for r in lib.store.items() if r.key is not None]
    by_target = paired_keys(lib.store, keys, dict(lib.fusion.dims), 4096)
    pairs = len(set().union(*by_target.values()))  # images with a title (+ clips with a transcript)
    assert pairs >= 8
    below = refresh_library_fusion(copy, train="auto", device="cpu", min_pairs=pairs + 1)
    assert below.action in ("none", "centred"), below
    assert refresh_library_fusion(copy, train="off", device="cpu", min_pairs=1).action != "trained"
    above = refresh_library_fusion(copy, train="auto", device="cpu", min_pairs=pairs)
    assert above.action == "trained" and str(pairs) in above.reason, above
    assert above.report is not None and "frames" in above.report["bridges"]  # type: ignore[operator]
    with Library(copy, create=False, device="cpu") as trained:
        assert trained.fusion.origin == "trained" and trained.fusion.bridges is not None
        assert trained.check().ok
    # trained once: later refreshes leave it alone (never re-centred under its bridges)
    assert refresh_library_fusion(copy, train="auto", device="cpu", min_pairs=pairs).action == "none"


def test_info_reports_hubness(built: tuple[Library, dict[str, str]]) -> None:
    from click.testing import CliRunner

    from mmrec.cli.cmd_library import info

    lib, _ = built
    found = lib.info().hubness
    n = lib.store.count_items()
    assert found is not None and found.k == 10 and found.sample == found.items == n
    assert 1 <= found.max_occurrence <= n and found.max_share == pytest.approx(
        found.max_occurrence / n, abs=1e-3
    )
    assert found.top_item is not None and lib.store.get(found.top_item) is not None
    out = CliRunner().invoke(info, ["--library", str(lib.path)])
    assert out.exit_code == 0, out.output
    assert "hubness" in out.output and "skewness" in out.output
