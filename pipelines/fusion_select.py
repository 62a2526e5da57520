"""Which fusion a run uses: the library's current checkpoint when it has one, else the default.

The batch encoder and the single-file query path share this, so a query file is fused exactly
like the items it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrec.errors import InvalidInputError
from mmrec.fusion import DEFAULT_VERSION, Fusion
from mmrec.fusion.centring import centred_fusion, centring_due, modality_means
from mmrec.fusion.library_training import (
    CheckpointError,
    load_checkpoint,
    paired_keys,
    publish_fusion,
    train_library_fusion,
)
from mmrec.search import block_dims
from mmrec.store.library import LibraryBusyError, LibraryStore


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


# ---------------------------------------------------------------- keeping the default fusion good
TRAIN_MODES = ("off", "auto")
# ``--train-fusion auto`` trains once the library has this many items with a text-ish vector and
# frames or audio (the pairs bridges learn from). Measured on the first 192 stamps of the stratified
# tuxpaint subset of scripts/eval_default_fusion.py (38 held-out image-only test stamps, seeds 0/1; the
# full subset's run is in docs/architecture.md), trained on n captioned stamps against the centred
# default (en text->image R@10 0.63, same-category P@10 0.55): n=16 0.53/0.58 and P@10 0.45/0.47;
# n=32 0.63/0.61, 0.47/0.52; n=64 0.68/0.68, 0.52/0.56; n=154 0.79/0.71, 0.56/0.57. Training beats
# the centred default on both for both seeds first at ~150 pairs.
AUTO_TRAIN_PAIRS = 150


@dataclass(frozen=True)
class FusionRefresh:
    """What :func:`refresh_library_fusion` did: ``action`` is ``none``, ``centred`` (the default fusion
    re-taken on the library's statistics), ``trained`` or ``busy`` (another writer held the library)."""

    action: str
    reason: str
    version: str
    items: int
    report: dict[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def refresh_library_fusion(
    library: str | Path,
    train: str = "off",
    device: str = "auto",
    log: Callable[[str], None] | None = None,
    min_pairs: int = AUTO_TRAIN_PAIRS,
) -> FusionRefresh:
    """After an encode: centre the default fusion on the library's own statistics when
    :func:`mmrec.fusion.centring.centring_due` says so, or (``train="auto"``) train the fusion once
    the library holds ``min_pairs`` (:data:`AUTO_TRAIN_PAIRS`) text + frames/audio pairs. Everything is
    re-fused from stored modality vectors (no encoder runs) and switched in one commit (``publish_fusion``), then
    the index is rebuilt. A library another process is writing is left alone (``busy``): that
    writer's own refresh sees the same rule."""
    from mmrec.index.library_index import LibraryIndex  # faiss: only writers need it here

    if train not in TRAIN_MODES:
        raise InvalidInputError(
            "encode", "--train-fusion", f"must be one of {list(TRAIN_MODES)}, got {train!r}"
        )
    store = LibraryStore.open(library, create=False)
    try:
        with store.exclusive_run("mmrec encode (fusion refresh)"):
            stats = store.stats()
            items = int(stats["by_status"].get("ok", 0))
            if not items or not block_dims(store.manifest().get("models") or {}):
                return FusionRefresh(
                    "none", "no encoded item", str(store.fusion_version() or DEFAULT_VERSION), 0
                )
            fusion = library_fusion(store, _no_models, device)
            counts = {m: int(v["items"]) for m, v in stats["modalities"].items() if m in fusion.dims}
            dims = dict(fusion.dims)
            if train == "auto" and fusion.origin != "trained" and items >= min_pairs:
                pairs = paired_keys(store, _ok_keys(store), dims, 4096)
                n_pairs = len(set().union(*pairs.values())) if pairs else 0
                if n_pairs >= min_pairs:
                    if log is not None:
                        log(f"training the fusion: {n_pairs} pairs >= {min_pairs}")
                    trained, report = train_library_fusion(store, dims, device=device, log=log)
                    publish_fusion(store, trained)
                    LibraryIndex.open(store).rebuild()
                    reason = f"{n_pairs} text + frames/audio pairs >= {min_pairs}"
                    return FusionRefresh("trained", reason, trained.version, items, report)
            reason = centring_due(fusion, items, counts)
            if reason is None:
                return FusionRefresh("none", "statistics are current", fusion.version, items)
            if log is not None:
                log(f"centring the fusion on the library's statistics ({reason})")
            centred = centred_fusion(modality_means(store, _ok_keys(store), dims), dims, device)
            publish_fusion(store, centred)
            LibraryIndex.open(store).rebuild()
            return FusionRefresh("centred", reason, centred.version, items)
    except LibraryBusyError as exc:
        return FusionRefresh("busy", str(exc), str(store.fusion_version() or DEFAULT_VERSION), 0)
    finally:
        store.close()


def _ok_keys(store: LibraryStore) -> list[int]:
    """Keys of every item with a fused vector (read only when something is due: a full listing)."""
    return [int(k) for k in store.changes_since(0)[0]]


def _no_models() -> Any:
    raise InvalidInputError(
        "fusion", "models", "the library's manifest names no models (nothing encoded yet)"
    )
