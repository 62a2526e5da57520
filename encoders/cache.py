"""Where encoders keep files they derive from packaged weights (joined models, ONNX exports)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$MMREC_CACHE``, else ``~/.cache/mmrec``: shared by every library on the machine."""
    return Path(os.environ.get("MMREC_CACHE", Path.home() / ".cache" / "mmrec"))


def data_root() -> Path:
    """Where fetched sample and evaluation data live: ``$MMREC_DATA``, else ``<cache_root>/data``."""
    explicit = os.environ.get("MMREC_DATA")
    return Path(explicit) if explicit else cache_root() / "data"
