"""Which fusion a run uses: the library's current checkpoint when it has one, else the default.

The batch encoder and the single-file query path share this, so a query file is fused exactly
like the items it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrec.fusion import DEFAULT_VERSION, Fusion
from mmrec.search import TEXT_BLOCKS, block_dims

TEXT_MODALITIES = TEXT_BLOCKS


def modality_dims(models: Any) -> dict[str, int]:
    """Vector width of each item modality the loaded models can produce."""
    return block_dims(models.describe())


def fusion_version(manifest: dict) -> str | None:
    """The checkpoint version a library's manifest names (``fusion`` or ``fusion_version`` key)."""
    value = manifest.get("fusion_version", manifest.get("fusion"))
    if isinstance(value, dict):
        value = value.get("version")
    return str(value) if value else None


def library_fusion(store: Any, models: Any | Callable[[], Any], device: str = "auto") -> Fusion:
    """Load ``LIBRARY/fusion/<version>.pt`` when the manifest names a trained one, else the default.

    ``models`` may be a callable returning the ModelSet: the default fusion takes its block widths
    from the models the manifest recorded at encode time, so a reader that never embeds (similar
    by id, recommendations) builds it without touching the models at all.
    """
    manifest = store.manifest()
    version = fusion_version(manifest)
    if version and version != DEFAULT_VERSION:
        path = Path(store.path) / "fusion" / f"{version}.pt"
        if path.is_file():
            return Fusion.load(path, device=device)
    dims = block_dims(manifest.get("models") or {})
    if not dims:
        dims = modality_dims(models() if callable(models) else models)
    return Fusion(dims, device=device)
