"""Which fusion a run uses: the library's current checkpoint when it has one, else the default.

The batch encoder and the single-file query path share this, so a query file is fused exactly
like the items it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrec.fusion import DEFAULT_VERSION, Fusion
from mmrec.fusion.library_training import CheckpointError, load_checkpoint
from mmrec.search import block_dims


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
    """Load ``LIBRARY/fusion/<version>.pt`` when the library uses a trained fusion, else the default.

    The version comes from the catalog (committed with the fused vectors), so it always matches
    them. A missing or damaged checkpoint is refused, never replaced by the default fusion: the
    stored vectors were fused with it, and queries fused otherwise would rank wrongly without a word.

    ``models`` may be a callable returning the ModelSet: the default fusion takes its block widths
    from the models the manifest recorded at encode time, so a reader that never embeds (similar
    by id, recommendations) builds it without touching the models at all.
    """
    for _attempt in range(3):
        version = store.fusion_version() if hasattr(store, "fusion_version") else None
        if version is None:
            version = fusion_version(store.manifest())
        if not version or version == DEFAULT_VERSION:
            break
        path = Path(store.path) / "fusion" / f"{version}.pt"
        try:
            return load_checkpoint(path, version, device)
        except FileNotFoundError:
            if hasattr(store, "fusion_version") and store.fusion_version() != version:
                continue  # a train-fusion switched versions (and removed this one) meanwhile
            raise CheckpointError(
                str(path), "missing: the library's items were fused with it; " + _hint(store)
            ) from None
    dims = block_dims(store.manifest().get("models") or {})
    if not dims:
        dims = modality_dims(models() if callable(models) else models)
    return Fusion(dims, device=device)


def _hint(store: Any) -> str:
    return (
        f"run `mmrec check --library {store.path} --repair` (re-fuses with the default fusion) "
        "or `mmrec train-fusion` again"
    )
