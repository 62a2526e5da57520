"""200k fused 512-d rows: a full scan with iter_fused keeps memory bounded (no whole-file loads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrec.store import EncodedItem, ItemRecord, LibraryStore

N, D, COMMIT = 200_000, 512, 20_000


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _rows(start: int, n: int) -> np.ndarray:
    """Row i is recognisable from its values: first entry i % 997, then steps of 1/1024."""
    base = (np.arange(start, start + n, dtype=np.float32) % 997)[:, None]
    return base + np.arange(D, dtype=np.float32)[None, :] / 1024


@pytest.mark.slow
def test_iter_fused_scans_200k_rows_with_bounded_memory(tmp_path: Path) -> None:
    store = LibraryStore.open(tmp_path / "lib")
    for start in range(0, N, COMMIT):
        fused = _rows(start, COMMIT)
        items = [
            EncodedItem(
                ItemRecord(f"t{i}", None, "text", title=f"row {i}"), {}, fused[i - start], {"text": 1.0}
            )
            for i in range(start, start + COMMIT)
        ]
        store.commit_items(items, "v0")
        del items, fused
    file_mib = (tmp_path / "lib" / "vectors" / "fused.f32").stat().st_size / 2**20
    assert file_mib == pytest.approx(N * D * 4 / 2**20)

    before = _rss_mib()
    peak, seen, batches = before, 0, 0
    for keys, vecs in store.iter_fused(batch_size=8192):
        assert vecs.dtype == np.float32 and vecs.shape == (len(keys), D)
        item_no = keys - 1  # keys were handed out in commit order starting at 1
        np.testing.assert_array_equal(vecs[:, 0], (item_no % 997).astype(np.float32))
        np.testing.assert_allclose(vecs[:, -1] - vecs[:, 0], (D - 1) / 1024, rtol=1e-3)
        seen += len(keys)
        batches += 1
        peak = max(peak, _rss_mib())
    assert seen == N and batches == -(-N // 8192)
    # one 16 MiB batch (plus SQLite pages) may be resident, never the 390 MiB file
    assert peak - before < 96, (before, peak, file_mib)

    # random access through the memmap returns the same rows
    pick = np.array([1, 777, 123_456, N], dtype=np.int64)
    np.testing.assert_array_equal(store.fused(pick), np.stack([_rows(int(k) - 1, 1)[0] for k in pick]))
    store.close()
