"""One rule for where mmrec keeps derived files and fetched data, whoever asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoders.cache import cache_root, data_root


def test_data_follows_mmrec_cache_unless_mmrec_data_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmrec.evaluate import datasets

    monkeypatch.delenv("MMREC_DATA", raising=False)
    monkeypatch.setenv("MMREC_CACHE", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"
    assert data_root() == tmp_path / "cache" / "data" == datasets.data_root()
    monkeypatch.setenv("MMREC_DATA", str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere" == datasets.data_root()
    monkeypatch.delenv("MMREC_CACHE")
    monkeypatch.delenv("MMREC_DATA")
    assert data_root() == Path.home() / ".cache" / "mmrec" / "data"
