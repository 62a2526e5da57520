"""``mmrec.Library``: the public Python API over one library folder.

The CLI and the future HTTP server are thin layers over this class. It is safe to share between
threads: heavy parts (models, fusion, index) load once on first use under a lock, the store keeps
one SQLite connection per thread, and the index serialises its own writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mmrec.errors import ItemNotFoundError, MmrecError
from mmrec.search import SearchFilters, SearchResponse, search_vector
from mmrec.store import LibraryStore
from mmrec.store.thumbnails import BackfillStep, Thumbnail

T = TypeVar("T")

TEXT_BLOCKS = ("text", "tags", "vtags", "speech")


class Library:
    """A media library: encode folders into it, then query it by item, file or text."""

    def __init__(
        self,
        path: str | Path = "mmrec-library",
        models: str | None = None,
        device: str = "auto",
        create: bool = True,
    ) -> None:
        self.path = Path(path).expanduser()
        self.device = device
        self.store = LibraryStore.open(self.path, create=create)
        self._models_spec = models
        self._lock = threading.RLock()
        self._cache: dict[str, Any] = {}

    # ----------------------------------------------------------------- lazy parts
    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = build()
            return self._cache[name]

    @property
    def models_profile(self) -> str:
        """The model profile this library is read with: explicit, else the one it was built with."""
        return self._models_spec or str(self.store.manifest().get("models_profile") or "bundled")

    @property
    def models(self) -> Any:
        def build() -> Any:
            from encoders.registry import load_models

            return load_models(self.models_profile, device=self.device)

        return self._once("models", build)

    @property
    def fusion(self) -> Any:
        def build() -> Any:
            from pipelines.fusion_select import library_fusion

            return library_fusion(self.store, self.models, self.device)

        return self._once("fusion", build)

    @property
    def index(self) -> Any:
        def build() -> Any:
            from mmrec.index.library_index import LibraryIndex

            index = LibraryIndex.open(self.store)
            index.sync()
            return index

        return self._once("index", build)

    def _forget(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._cache.pop(name, None)

    # ----------------------------------------------------------------- writing
    def encode(self, media_dir: str | Path, **options: Any) -> Any:
        """Encode new and changed files under ``media_dir`` (see ``pipelines.encode_job.run_encode``)."""
        from pipelines.encode_job import run_encode

        summary = run_encode(media_dir, self.path, models=self.models, device=self.device, **options)
        self.store.update_manifest(models_profile=self.models_profile)
        self._forget("index")
        return summary

    def reindex(self, factory: str | None = None) -> dict[str, Any]:
        """Rebuild the FAISS index from stored fused vectors (optionally as a given factory string)."""
        from mmrec.index.library_index import LibraryIndex

        with self._lock:
            index = LibraryIndex.open(self.store)
            index.rebuild(factory=factory)
            index.save()
            self._cache["index"] = index
            return index.describe()

    def train_fusion(
        self,
        epochs: int = 30,
        holdout_fraction: float = 0.2,
        seed: int = 0,
        keys: list[int] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Train this library's fusion (centring + text->frames/audio bridges), save it as
        ``fusion/<version>.pt``, re-fuse every item from its stored vectors (no encoder runs), record the
        version in the manifest and rebuild the index. ``keys`` limits what training sees (e.g. a
        train split); ``options`` go to ``mmrec.fusion.library_training.train_library_fusion``."""
        from mmrec.fusion.library_training import chunked, read_items, train_library_fusion
        from mmrec.index.library_index import LibraryIndex

        with self._lock:
            if next(iter(self.store.items()), None) is None:
                raise MmrecError(f"train-fusion: {self.path} has no encoded item to train on")
            dims = dict(self.fusion.dims)
            fusion, report = train_library_fusion(
                self.store,
                dims,
                epochs,
                keys=keys,
                holdout_fraction=holdout_fraction,
                seed=seed,
                device=self.device,
                **options,
            )
            fusion.save(self.path / "fusion" / f"{fusion.version}.pt")
            all_keys = [int(r.key) for r in self.store.items() if r.key is not None]
            refused = 0
            for part in chunked(all_keys, 4096):
                items = read_items(self.store, part, fusion.modalities)
                pairs = [(k, it) for k, it in zip(part, items, strict=True) if it]
                if pairs:
                    fused, weights = fusion.fuse([it for _, it in pairs])
                    self.store.set_fused([k for k, _ in pairs], fused, weights, fusion.version)
                    refused += len(pairs)
            self.store.update_manifest(fusion_version=fusion.version)
            index = LibraryIndex.open(self.store)
            index.rebuild()
            index.save()
            self._forget("fusion", "index")
            report["refused_items"] = refused
            return report

    # ----------------------------------------------------------------- reading
    def info(self) -> dict[str, Any]:
        """Counts, failures, models, fusion and index: what ``mmrec info`` prints."""
        stats = self.store.stats()
        manifest = self.store.manifest()
        info: dict[str, Any] = {"library": str(self.path), **stats}
        info["models_profile"] = manifest.get("models_profile")
        info["fusion_version"] = manifest.get("fusion_version", "default")
        index_dir = self.path / "index"
        info["index"] = self.index.describe() if index_dir.exists() else None
        return info

    def failures(self) -> list[dict[str, Any]]:
        return [{"path": p, "reason": r, "time": t} for p, r, t in self.store.failures()]

    def search(self, text: str, k: int = 10, filters: SearchFilters | None = None) -> SearchResponse:
        """Text -> items: the query reaches titles, descriptions, tags, transcripts and visual tags,
        and the frame/audio spaces too when the models have text towers (CLIP/SigLIP, CLAP)."""
        text = text.strip()
        if not text:
            raise MmrecError("search: the query text is empty")
        query = self.text_query_vector(text)
        hits = search_vector(self.store, self.index, self.fusion, query, k, filters)
        return SearchResponse(query={"text": text}, results=hits)

    def text_query_blocks(self, text: str) -> dict[str, np.ndarray]:
        """Per-block query vectors for a text query, for every block the library's fusion has."""
        models = self.models
        dims = self.fusion.dims
        blocks: dict[str, np.ndarray] = {}
        q = models.text.encode_text([text], role="query")[0]
        for m in TEXT_BLOCKS:
            if m in dims:
                blocks[m] = q
        if models.frame_text is not None and "frames" in dims:
            blocks["frames"] = models.frame_text.encode_text([text], role="query")[0]
        if models.audio_text is not None and "audio" in dims:
            blocks["audio"] = models.audio_text.encode_text([text], role="query")[0]
        return blocks

    def text_query_vector(self, text: str, fusion: Any | None = None) -> np.ndarray:
        """A text query as one unit vector in the fused space of ``fusion`` (default: the library's).

        Text blocks match the query as the text model embeds it (E5 is cross-lingual by itself and
        keeps same-language matches first). The trained bridges into the frame/audio spaces learnt
        from the library's own, usually one-language, titles; they read the query with its language
        axis removed when the text model has one (bundled E5), so a Chinese query crosses them like
        its English translation (tuxpaint after training, Chinese R@10 as a share of English on
        seeds 0/1/2: 0.74/0.83/0.86 without, 0.80/0.84/0.83 with).
        """
        blocks = self.text_query_blocks(text)
        strip = getattr(self.models.text, "strip_language", None)
        source = next((blocks[m] for m in TEXT_BLOCKS if m in blocks), None)
        neutral = strip(source[None])[0] if callable(strip) and source is not None else None
        return (fusion or self.fusion).query_vector(blocks, bridge_input=neutral)

    def similar(self, query: str | Path, k: int = 10, filters: SearchFilters | None = None) -> SearchResponse:
        """Item -> items. ``query`` is an item id, the path of a library file, or any media file
        (encoded on the fly with the library's models and fusion)."""
        record = self.store.get(str(query))
        if record is None:
            path = Path(query).expanduser()
            if path.exists():
                record = self.store.find_by_path(str(path.resolve()))
                if record is None or record.status != "ok":
                    return self._similar_to_file(path, k, filters)
            else:
                raise ItemNotFoundError(str(query))
        if record.key is None or record.status != "ok":
            raise ItemNotFoundError(str(query))
        vec = self.store.fused([record.key])[0]
        hits = search_vector(self.store, self.index, self.fusion, vec, k, filters, exclude_keys=[record.key])
        return SearchResponse(query={"item_id": record.item_id, "path": record.path}, results=hits)

    def _similar_to_file(self, path: Path, k: int, filters: SearchFilters | None) -> SearchResponse:
        from pipelines.query import encode_file_for_query

        fused, _vectors, metadata = encode_file_for_query(path, self.models, self.fusion)
        hits = search_vector(self.store, self.index, self.fusion, fused, k, filters)
        query = {"path": str(path), "encoded_on_the_fly": True, "kind": metadata.get("kind")}
        return SearchResponse(query=query, results=hits)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- thumbnails (serve-thumbs)
    def thumbnail(self, item_id: str) -> Thumbnail | None:
        """The item's preview picture, or None when it has none (text items, not backfilled yet).

        Reads only the catalog (no model, no media file); ItemNotFoundError for an unknown id.
        """
        record = self.store.get(str(item_id))
        if record is None or record.key is None:
            raise ItemNotFoundError(str(item_id))
        found = self.store.thumbnail(record.key)
        return None if found is None else Thumbnail.of(*found)

    def backfill_thumbnails(
        self,
        force: bool = False,
        *,
        workers: int | None = None,
        progress: Callable[[BackfillStep], None] | None = None,
    ) -> int:
        """Draw thumbnails for media items that lack one (all of them with ``force``); returns how
        many were written. Resumable; a file that cannot be drawn is reported through ``progress``
        and skipped (``pipelines.thumbnails.backfill_thumbnails``)."""
        from pipelines.thumbnails import backfill_thumbnails

        return backfill_thumbnails(self.store, force=force, workers=workers, progress=progress).made
