"""Session fixtures for evaluation tests: MovieLens-100K and its item text vectors (cached on disk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrec.evaluate.content import embed_items
from mmrec.evaluate.datasets import Dataset, load_dataset


@pytest.fixture(scope="session")
def movielens(ml100k_dir: Path) -> Dataset:
    return load_dataset("movielens-100k")


@pytest.fixture(scope="session")
def movielens_content(movielens: Dataset) -> np.ndarray:
    """Bundled text encoder (through encoders.registry) on "title (year). Genres: ..."; cached after one run."""
    return embed_items(movielens.item_documents())
