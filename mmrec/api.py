"""``mmrec.Library``: the one typed entry point over a library folder.

The CLI and the HTTP server are thin layers over this class. One instance is shared by every
server thread: heavy parts (models, fusion, index, recommender) are built once on first use under
a lock, the store keeps one SQLite connection per thread, and the index serialises its own writes.

A long-lived Library keeps up with other processes: every read first calls :meth:`refresh`, one
cheap read of the store's sequence (and a ``stat`` of the manifest); when either moved, the
in-memory index catches up from the store's change log (never saving) and a new fusion checkpoint
is loaded. Reads never write to the library folder; writers (encode, reindex, train-fusion, events)
do, under the store's writer lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mmrec.check import CheckReport
from mmrec.errors import IndexUnavailableError, InvalidInputError, ItemNotFoundError, LibraryError, MmrecError
from mmrec.events.reader import ReadResult, parse_rows, read_events
from mmrec.events.records import CommentRecord, EventRecord
from mmrec.limits import MAX_ANALYZE_CHARS, MAX_DESCRIPTION_CHARS, MAX_ID_CHARS, MAX_QUERY_CHARS, too_long
from mmrec.modalities import role_of
from mmrec.recommend.recommender import UnknownUserError
from mmrec.results import (
    CommentAnalysis,
    DescribeResult,
    Failure,
    HubnessInfo,
    IndexInfo,
    IngestResult,
    InspectReport,
    ItemDetail,
    ItemPage,
    ItemSummary,
    LibraryInfo,
    ProfileSummary,
    RecommendationList,
    RefitResult,
)
from mmrec.search import (
    TEXT_BLOCKS,
    BlockLayout,
    SearchFilters,
    SearchResponse,
    block_dims,
    check_mode,
    search_text,
    search_vector,
)
from mmrec.store import ItemRecord, LibraryStore
from mmrec.store.thumbnails import BackfillStep, Thumbnail

if TYPE_CHECKING:
    from encoders.comments import CommentAnalyzer
    from encoders.registry import ModelSet
    from mmrec.events.store import EventStore
    from mmrec.fusion import Fusion
    from mmrec.index.library_index import LibraryIndex
    from mmrec.privacy import ErasureReceipt, UserExport
    from mmrec.profiles.live import LiveProfiles
    from mmrec.recommend.recommender import Recommender
    from pipelines.encode_job import EncodeSummary

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_PAGE = 1000


class Library:
    """A media library: encode folders into it, then query it by item, file or text, and recommend."""

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
        self._lock = threading.RLock()  # lazy parts
        self._events_lock = threading.Lock()  # folding events into profiles
        self._cache: dict[str, Any] = {}
        self._analyzers: dict[str, CommentAnalyzer] = {}
        self._manifest_stamp = self._stamp()
        self._fusion_key: str | None = None
        self._refitting: threading.Thread | None = None  # the background refit, None when idle
        self._refit_again = False  # a refit was asked for while one ran
        self._erasures = 0  # forgets seen when the collaborative model was fitted (see refresh)
        self._refits = 0  # on-demand refits (`mmrec refit`) seen when it was fitted (see refresh)
        self._refit_lock = threading.Lock()  # one on-demand refit at a time

    # ----------------------------------------------------------------- lazy parts
    def _once(self, name: str, build: Callable[[], T]) -> T:
        found = self._cache.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._cache:
                self._cache[name] = build()
            return self._cache[name]

    @property
    def models_profile(self) -> str:
        """The model profile this library is read with: explicit, else the one it was built with."""
        return self._models_spec or str(self.store.manifest().get("models_profile") or "bundled")

    @property
    def models(self) -> ModelSet:
        """The encoders (each loads its weights on first use, not here)."""

        def build() -> ModelSet:
            from encoders.registry import load_models

            return load_models(self.models_profile, device=self.device)

        return self._once("models", build)

    @property
    def fusion(self) -> Fusion:
        """The library's fusion, built without encoder weights: a trained checkpoint, or the default
        with the block widths of the models the manifest recorded (bundled models' widths are static
        facts when a manifest predates that record)."""

        def build() -> Fusion:
            from pipelines.fusion_select import library_fusion

            self._fusion_key = self.store.fusion_version()
            return library_fusion(self.store, lambda: self.models, self.device)

        return self._once("fusion", build)

    def _layout(self) -> BlockLayout | Fusion:
        """What explains a score by modality: the fusion when loaded, else its block layout from the
        manifest (no torch, no encoder), provided its width is the index's."""
        fusion = self._cache.get("fusion")
        if fusion is not None:
            return fusion
        layout = self._once(
            "layout", lambda: BlockLayout(block_dims(self.store.manifest().get("models") or {}))
        )
        inner = self.index.index
        if inner is None or layout.dim != inner.dim:
            return self.fusion
        return layout

    @property
    def index(self) -> LibraryIndex:
        """The FAISS index, loaded to read (never rebuilt or saved by this reader)."""

        def build() -> LibraryIndex:
            from mmrec.index.library_index import LibraryIndex

            return LibraryIndex.load(self.store)

        return self._once("index", build)

    @property
    def events(self) -> EventStore:
        def build() -> EventStore:
            from mmrec.events.store import EventStore

            return EventStore.open(self.path, create=False)

        return self._once("events", build)

    @property
    def live_profiles(self) -> LiveProfiles:
        def build() -> LiveProfiles:
            from mmrec.profiles.live import LiveProfiles

            return LiveProfiles(self.events, self.store)

        return self._once("live", build)

    @property
    def recommender(self) -> Recommender:
        """The live recommender; its collaborative hybrid is fitted once, on first use."""

        def build() -> Recommender:
            from mmrec.recommend.recommender import Recommender

            self._erasures = self.events.erasures()
            self._refits = self.events.refits()
            reco = Recommender(self.store, _IndexView(self), self.events)
            reco.refit()  # fit_live_hybrid on every stored event
            return reco

        return self._once("recommender", build)

    def _forget(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._cache.pop(name, None)

    def _has_events(self) -> bool:
        from mmrec.events.store import FILENAME

        return "events" in self._cache or (self.path / FILENAME).exists()

    # ----------------------------------------------------------------- keeping up
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.store.path / "manifest.json")
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def refresh(self) -> bool:
        """Catch up with what other processes committed; True when anything was reloaded.

        Cheap when nothing moved (a ``stat`` and one SQLite read). Saves nothing.
        """
        changed = False
        stamp = self._stamp()
        index = self._cache.get("index")
        seq = self.store.seq()
        moved = index is not None and seq != index.seq
        if stamp != self._manifest_stamp or moved:
            self._manifest_stamp = stamp
            # the catalog records the version with the fused vectors, so a switch shows even when the
            # manifest was not rewritten yet (train-fusion killed between its commit and the manifest)
            if "fusion" in self._cache and self.store.fusion_version() != self._fusion_key:
                self._forget("fusion")
                changed = True
            self._forget("layout")
        if index is not None and moved:
            index.catch_up()
            changed = True
        reco = self._cache.get("recommender")
        if reco is not None and self.events.erasures() != self._erasures:
            # Another process forgot a user: the model fitted here may still hold them. Refit now,
            # before anything else is served from it.
            with self._lock:
                seen = self.events.erasures()
                if seen != self._erasures:
                    reco.refit()
                    self._erasures = seen
                    changed = True
        if reco is not None and self.events.refits() != self._refits:
            # `mmrec refit` (or POST /api/refit) ran elsewhere: fit again here too, in the background;
            # the current model keeps serving until the new one is swapped in.
            self._refits = self.events.refits()
            self._refit_in_background(reco)
            changed = True
        return changed

    def warm_up(self) -> None:
        """Load everything a query may need now (server start): models, fusion, index, recommender."""
        self.refresh()
        models = self.models
        models.text.encode_text(["warm up"], role="query")
        for role in ("frames", "audio"):
            getattr(models, role)
        _ = self.fusion, self.index
        if self._has_events():
            _ = self.recommender, self.live_profiles

    # ----------------------------------------------------------------- writing
    def encode(
        self,
        media_dir: str | Path,
        *,
        metadata: str | Path | None = None,
        workers: int | None = None,
        batch_size: int = 32,
        fail_fast: bool = False,
        retry_failed: bool = False,
        progress: bool = True,
        wait: bool = False,
        engine: str = "local",
        address: str | None = None,
        mode: str | None = None,
        speech: bool = True,
        frame_count: int = 16,
        decode_timeout_s: float | None = None,
        train_fusion: str = "off",
        refresh_fusion: bool = True,
    ) -> EncodeSummary:
        """Encode new and changed files under ``media_dir`` (``pipelines.encode_job.run_encode``), then
        bring the fusion up to date: centred on the library's statistics when due, trained when
        ``train_fusion="auto"`` and the library is large enough (``summary.fusion`` says which).
        ``refresh_fusion=False`` leaves the fusion as it was (new items are fused with it either way)."""
        from pipelines.encode_job import DECODE_TIMEOUT_S, run_encode
        from pipelines.fusion_select import refresh_library_fusion

        summary = run_encode(
            media_dir, self.path, models=self.models, metadata=metadata, workers=workers,
            batch_size=batch_size, device=self.device, fail_fast=fail_fast, retry_failed=retry_failed,
            progress=progress, wait=wait, engine=engine, address=address, mode=mode, speech=speech,
            frame_count=frame_count,
            decode_timeout_s=DECODE_TIMEOUT_S if decode_timeout_s is None else decode_timeout_s,
        )  # fmt: skip
        self.store.update_manifest(models_profile=self.models_profile)
        if refresh_fusion:
            refresh = refresh_library_fusion(self.path, train=train_fusion, device=self.device)
            summary.fusion = refresh.to_dict()
        self.refresh()
        return summary

    def reindex(self, factory: str | None = None) -> IndexInfo:
        """Rebuild the FAISS index from stored fused vectors (optionally as a given factory string)."""
        from mmrec.index.library_index import LibraryIndex

        with self._lock:
            index = LibraryIndex.open(self.store)
            index.rebuild(factory=factory)
            index.save()
            self._cache["index"] = index
            return IndexInfo.from_describe(index.describe())

    def train_fusion(
        self,
        epochs: int = 30,
        holdout_fraction: float = 0.2,
        seed: int = 0,
        keys: list[int] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Train this library's fusion (centring + text->frames/audio bridges) and make it the library's,
        all or nothing: ``fusion/<version>.pt``, every item re-fused from its stored vectors (no
        encoder runs), one catalog commit that records the version, then the manifest and the index.
        A kill part-way leaves the previous fusion whole; checkpoints nothing uses are removed.
        ``keys`` limits what training sees (e.g. a train split); ``options`` go to
        ``mmrec.fusion.library_training.train_library_fusion``."""
        from mmrec.fusion.library_training import publish_fusion, train_library_fusion
        from mmrec.index.library_index import LibraryIndex

        with self._lock:
            if next(iter(self.store.items()), None) is None:
                raise MmrecError(f"train-fusion: {self.path} has no encoded item to train on")
            dims = block_dims(self.store.manifest().get("models") or {}) or dict(self.fusion.dims)
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
            refused = publish_fusion(self.store, fusion)
            index = LibraryIndex.open(self.store)
            index.rebuild()
            self._forget("fusion")
            self._cache["index"] = index
            report["refused_items"] = refused
            return report

    def check(self, repair: bool = False) -> CheckReport:
        """Verify every part of the library against the others (``mmrec check``); with ``repair``,
        rebuild what is derived (manifest from the catalog's copy, fused vectors, index, profiles,
        thumbnails) and check again. Source data is never deleted."""
        from mmrec.check import check_library

        def thumbnails(store: LibraryStore) -> object:
            from pipelines.thumbnails import backfill_thumbnails

            return backfill_thumbnails(store)

        with self._lock:
            report = check_library(self.path, repair=repair, thumbnails=thumbnails)
            if repair:
                self._forget("fusion", "index", "recommender", "live")
            return report

    # ----------------------------------------------------------------- library facts
    def info(self) -> LibraryInfo:
        """Counts, failures, models, fusion and index: what ``mmrec info`` prints."""
        from mmrec.index.library_index import INDEX_FOLDER

        self.refresh()
        stats = self.store.stats()
        manifest = stats["manifest"]
        index, index_error = None, None
        if (self.path / INDEX_FOLDER).exists() and (stats["items"] or "index" in self._cache):
            try:
                index = IndexInfo.from_describe(self.index.describe())
            except IndexUnavailableError as exc:  # info is how a user finds out: report, don't fail
                index_error = str(exc)
        return LibraryInfo(
            library=str(self.path),
            items=int(stats["items"]),
            by_kind=dict(stats["by_kind"]),
            by_status=dict(stats["by_status"]),
            failures=int(stats["failures"]),
            modalities=dict(stats["modalities"]),
            files=dict(stats["files"]),
            bytes_on_disk=int(stats["bytes_on_disk"]),
            seq=int(stats["seq"]),
            schema_version=int(stats["schema_version"]),
            manifest=manifest,
            models_profile=manifest.get("models_profile"),
            fusion_version=str(self.store.fusion_version() or "default"),
            index=index,
            index_error=index_error,
            hubness=self._hubness(),
        )

    def _hubness(self) -> HubnessInfo | None:
        """Hubness of the fused vectors on a bounded sample (read-only, a few hundred ms at most)."""
        from mmrec.evaluate.hubness import HUBNESS_SAMPLE, library_hubness

        keys = self.store.changes_since(0)[0]
        if len(keys) < 2:
            return None
        found, top_key = library_hubness(self.store, keys, sample=HUBNESS_SAMPLE)
        top = self.store.get_by_keys([top_key])[0]
        return HubnessInfo(
            k=found.k,
            sample=found.lists,
            items=len(keys),
            max_occurrence=found.max_occurrence,
            max_share=round(found.max_share, 4),
            skewness=round(found.skewness, 3),
            top_item=None if top is None else top.item_id,
        )

    def failures(self) -> list[Failure]:
        return [Failure(path=p, reason=r, time=t) for p, r, t in self.store.failures()]

    # ----------------------------------------------------------------- items
    def items(self, offset: int = 0, limit: int = 50, filters: SearchFilters | None = None) -> ItemPage:
        """A page of ok items in catalog order; ``total`` counts all that pass ``filters``."""
        if offset < 0:
            raise InvalidInputError("items", "offset", f"must be >= 0, got {offset}")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError("items", "limit", f"must be within 1..{MAX_PAGE}, got {limit}")
        self.refresh()
        filters = filters or SearchFilters()
        if filters.min_duration is None and filters.tag is None:
            total = self.store.count_items(kind=filters.kind)
            records = self.store.item_page(offset, limit, kind=filters.kind)
        else:
            matching = [r for r in self.store.items(kind=filters.kind) if filters.matches(r)]
            total, records = len(matching), matching[offset : offset + limit]
        thumbs = self._thumbnail_keys([int(r.key) for r in records if r.key is not None])
        items = [ItemSummary.from_record(r, r.key in thumbs) for r in records]
        return ItemPage(items=items, total=total, offset=offset, limit=limit)

    def item(self, item_id: str) -> ItemDetail:
        """Everything shown on an item's page; ItemNotFoundError for an unknown id."""
        self.refresh()
        record = self._record(item_id)
        meta = record.metadata or {}
        probe = meta.get("probe") or {}
        attention = self.store.attention([record.key])[0] if record.key is not None else {}
        thumbs = self._thumbnail_keys([int(record.key)]) if record.key is not None else set()
        base = ItemSummary.from_record(record, record.key in thumbs)
        return ItemDetail(
            item_id=base.item_id,
            title=base.title,
            kind=base.kind,
            duration_s=base.duration_s,
            path_name=base.path_name,
            has_thumbnail=base.has_thumbnail,
            description=record.description,
            tags=list(record.tags),
            width=_int_or_none(probe.get("width")),
            height=_int_or_none(probe.get("height")),
            status=record.status,
            modalities=sorted(attention),
            attention={m: float(w) for m, w in attention.items()},
            visual_tags=[(str(lbl), float(s)) for lbl, s in meta.get("visual_tags") or []],
            transcript=meta.get("transcript"),
            language=meta.get("language"),
            speech_gate=meta.get("speech_gate"),
        )

    def media_path(self, item_id: str) -> Path:
        """The stored absolute path of an ok file item; ItemNotFoundError when unknown, not a file, or gone.

        The id is looked up in the catalog and never joined to a folder, so a client cannot reach
        any other file.
        """
        self.refresh()
        record = self._record(item_id)
        if record.status != "ok" or not record.path:
            raise ItemNotFoundError(item_id)
        path = Path(record.path)
        if not path.is_file():
            raise ItemNotFoundError(item_id)
        return path

    def _record(self, item_id: str) -> ItemRecord:
        record = self.store.get(str(item_id))
        if record is None:
            raise ItemNotFoundError(str(item_id))
        return record

    def _thumbnail_keys(self, keys: Sequence[int]) -> set[int]:
        """Keys among ``keys`` that have a stored thumbnail."""
        return {int(k) for k in self.store.has_thumbnails(keys)}

    # ----------------------------------------------------------------- search
    def search(
        self, text: str, k: int = 10, filters: SearchFilters | None = None, mode: str = "hybrid"
    ) -> SearchResponse:
        """Text -> items: the query reaches titles, descriptions, tags, transcripts and visual tags,
        and the frame/audio spaces too when the models have text towers (CLIP/SigLIP, CLAP).

        ``mode``: ``hybrid`` (default) fuses the dense ranking with the exact-word (FTS5 bm25)
        ranking by reciprocal rank; ``dense`` or ``lexical`` use one side (``lexical`` loads no
        model). Each hit's ``matched`` says which side ranked it where, and the words it matched.
        """
        check_mode(mode)
        text = text.strip()
        if not text:
            raise InvalidInputError("search", "q", "the query text is empty")
        if reason := too_long(text, MAX_QUERY_CHARS):
            raise InvalidInputError("search", "q", f"the query is {reason}; shorten it")
        _check_k(k)
        self.refresh()
        if mode == "lexical":
            return search_text(self.store, None, None, None, text, k, filters, mode)
        query = self.text_query_vector(text)
        return search_text(self.store, self.index, self.fusion, query, text, k, filters, mode)

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

    def text_query_vector(self, text: str, fusion: Fusion | None = None) -> np.ndarray:
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
        (encoded on the fly with the library's models and fusion). By id no encoder is loaded."""
        _check_k(k)
        self.refresh()
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
        hits = search_vector(
            self.store, self.index, self._layout(), vec, k, filters, exclude_keys=[record.key]
        )
        return SearchResponse(query={"item_id": record.item_id, "path": record.path}, results=hits)

    def similar_to_upload(
        self, data: bytes, filename: str, k: int = 10, filters: SearchFilters | None = None
    ) -> SearchResponse:
        """Items similar to uploaded media bytes. Only the name's suffix is used (to pick a decoder);
        the bytes go to a private temporary file that is removed afterwards."""
        if not data:
            raise InvalidInputError("upload", "file", "the uploaded file is empty")
        _check_k(k)
        suffix = Path(filename or "").suffix.lower()
        if not suffix or len(suffix) > 10 or not suffix[1:].isalnum():
            raise InvalidInputError(
                "upload", "filename", f"needs a media suffix such as .mp4 or .png, got {filename!r}"
            )
        self.refresh()
        with tempfile.TemporaryDirectory(prefix="mmrec-upload-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            response = self._similar_to_file(path, k, filters)
        response.query.pop("path", None)  # the temporary file is gone and private
        response.query["filename"] = Path(filename).name
        return response

    def _similar_to_file(self, path: Path, k: int, filters: SearchFilters | None) -> SearchResponse:
        from pipelines.query import encode_file_for_query

        fused, _vectors, metadata = encode_file_for_query(path, self.models, self.fusion)
        hits = search_vector(self.store, self.index, self.fusion, fused, k, filters)
        query = {"path": str(path), "encoded_on_the_fly": True, "kind": metadata.get("kind")}
        return SearchResponse(query=query, results=hits)

    def inspect(self, path: str | Path, frame_count: int = 16) -> InspectReport:
        """What this library's models understand of one media file (``mmrec inspect``)."""
        return inspect_file(Path(path), self.models, frame_count=frame_count)

    # ----------------------------------------------------------------- users
    def profile(self, user_id: str) -> ProfileSummary:
        """A user's interests, negatives, keywords and modality preferences; UnknownUserError if none."""
        self.refresh()
        if not self._has_events():
            raise UnknownUserError(user_id)
        return ProfileSummary.from_summary(self._profiles_reco().profile(user_id).to_summary())

    def _profiles_reco(self) -> Recommender:
        """The recommender if built, else a light one: a profile needs no collaborative fit."""
        found = self._cache.get("recommender")
        if found is not None:
            return found
        from mmrec.recommend.recommender import Recommender

        return self._once("profiles_reco", lambda: Recommender(self.store, _IndexView(self), self.events))

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        diversity: float = 0.0,
        explore: float | None = None,
        record_served: bool = False,
    ) -> RecommendationList:
        """Recommendations with reasons. ``explore`` is the share of slots given to exploration (None
        or 0: off); ``record_served`` writes the list back as served items (the server does)."""
        self.refresh()
        if not self._has_events():
            raise UnknownUserError(user_id)
        results = self.recommender.recommend(
            user_id, k=k, diversity=diversity, explore=explore, record_served=record_served
        )
        return RecommendationList(user_id=user_id, k=k, diversity=diversity, explore=explore, results=results)

    def describe_user(self, user_id: str, text: str) -> DescribeResult:
        """Store a user's free-text self-description (cold start, and a standing interest)."""
        from mmrec.profiles import ProfileStore, set_description

        user_id = _user(user_id, "describe-user")
        text = text.strip()
        if not text:
            raise InvalidInputError("describe-user", "text", "the self-description is empty")
        if reason := too_long(text, MAX_DESCRIPTION_CHARS):
            raise InvalidInputError("describe-user", "text", f"the self-description is {reason}; shorten it")
        self.refresh()
        vector = self.text_query_vector(text)
        with self._events_lock:
            store = ProfileStore(self._writable_events())
            store.put(set_description(store.get_or_new(user_id), text, vector))
        return DescribeResult(user_id=user_id, description=text, dim=int(vector.shape[0]))

    def export_user(self, user_id: str) -> UserExport:
        """Everything held about a user, as JSON-ready rows (reads only); UnknownUserError if nothing."""
        from mmrec.privacy import NothingHeldError, export_user

        user_id = _user(user_id, "export-user")
        self.refresh()
        if not self._has_events():
            raise NothingHeldError(user_id, "export-user")
        found = export_user(self.events, user_id, str(self.path))
        if found.is_empty:
            raise NothingHeldError(user_id, "export-user")
        return found

    def forget_user(self, user_id: str) -> ErasureReceipt:
        """Erase a user everywhere (see ``mmrec.privacy``) and return the receipt.

        A user with nothing stored and no row in a loaded model is an UnknownUserError (a typo must
        not look like a successful erasure), raised after scrubbing the file anyway, so rerunning a
        forget that was killed between its delete and its scrub completes it. Events arriving
        meanwhile wait: folding is locked.
        """
        from mmrec.privacy import ErasureReceipt, NothingHeldError, erase_from_store, model_erasure

        user_id = _user(user_id, "forget")
        started = time.perf_counter()
        self.refresh()
        self.wait_for_refit()  # a refit in flight may have read the user's rows: let it land first
        recommenders = [self._cache.get(n) for n in ("recommender", "profiles_reco")]
        loaded = [r for r in recommenders if r is not None]
        in_model = any(
            user_id in getattr(getattr(r.hybrid, "fitted", None), "user_index", {}) for r in loaded
        )
        with self._events_lock:
            if not self._has_events():
                raise NothingHeldError(user_id, "forget")
            events = self._writable_events()
            held = _holds_user(events, user_id)
            if not held and not in_model:
                events.scrub()  # a forget killed after its delete left copies: a rerun finishes it
                raise NothingHeldError(user_id, "forget")
            erased = erase_from_store(events, user_id)
            if "recommender" in self._cache:
                self._erasures = events.erasures()  # this process forgets its own model below
            memory: list[str] = []
            done: dict[str, object] | None = None
            for name, reco in zip(("recommender", "profiles_reco"), recommenders, strict=True):
                if reco is None:
                    continue
                answer = reco.forget_user(user_id)
                memory.append(f"{name}: cached collaborative row")
                if name == "recommender":
                    done = answer
        return ErasureReceipt(
            user_id=user_id,
            library=str(self.path),
            erased_at=time.time(),
            removed=erased.removed,
            popularity_items=erased.popularity_items,
            models=[model_erasure(done)],
            sqlite=[erased.scrub],
            memory=memory,
            seconds=round(time.perf_counter() - started, 4),
        )

    def add_events(self, rows: Sequence[Mapping[str, object]]) -> IngestResult:
        """Validate rows like ``mmrec ingest`` (a missing timestamp means now), store the good ones and
        fold each new one into its user's profile at once."""
        parsed = parse_rows(_rows(rows, "events"), "events", default_timestamp=time.time())
        return self._store(parsed, "bundled")

    def add_comments(self, rows: Sequence[Mapping[str, object]], analyzer: str = "bundled") -> IngestResult:
        """Validate, analyse (new ones only) and store comments; their users' profiles are rebuilt."""
        parsed = parse_rows(_rows(rows, "comments"), "comments", default_timestamp=time.time())
        return self._store(parsed, analyzer)

    def ingest(
        self, file: str | Path, analyzer: str = "bundled", encoding: str | None = None
    ) -> IngestResult:
        """Ingest an events or comments file (CSV, JSONL, Parquet): what ``mmrec ingest`` runs.

        ``encoding`` names a text file's encoding when it is not UTF-8/16/32 (e.g. "latin-1")."""
        return self._store(read_events(file, encoding=encoding), analyzer, source=str(file))

    def analyze(self, texts: Sequence[str], analyzer: str = "bundled") -> list[CommentAnalysis]:
        """Language, sentiment and keywords of each text."""
        return _analyses(self._analyzer(analyzer), texts)

    def _analyzer(self, name: str) -> CommentAnalyzer:
        with self._lock:
            if name not in self._analyzers:
                from encoders.comments import load_analyzer

                self._analyzers[name] = load_analyzer(name, device=self.device)
            return self._analyzers[name]

    def _writable_events(self) -> EventStore:
        """The event store, created on the first write (reads never create it)."""

        def build() -> EventStore:
            from mmrec.events.store import EventStore

            return EventStore.open(self.path)

        return self._once("events", build)

    def _store(self, parsed: ReadResult, analyzer: str, source: str = "comments") -> IngestResult:
        from mmrec.profiles import refresh_profiles

        with _write_failures(self.path / "events.sqlite"), self._events_lock:
            events = self._writable_events()  # creating events.sqlite can meet a full disk too
            if parsed.kind == "comments":
                fresh: list[CommentRecord] = events.new_comments(parsed.comments)
                analyses = self._analyzer(analyzer).analyze([c.text for c in fresh]) if fresh else []
                name = self._analyzer(analyzer).name if fresh else ""
                added: Sequence[EventRecord | CommentRecord] = events.add_comments(fresh, analyses, name)
                total = len(parsed.comments)
                users = sorted({r.user_id for r in added})
                updated = len(refresh_profiles(users, events, self.store)) if users else 0
            else:
                new_events = events.add_events(parsed.events)
                added, total = new_events, len(parsed.events)
                users = sorted({r.user_id for r in new_events})
                updated = len(self.live_profiles.fold(new_events)) if new_events else 0
                reco = self._cache.get("recommender")  # not built yet: it reads the store when it is
                if new_events and reco is not None:
                    reco.observe(new_events)
                    self._refit_if_needed(reco)
        return IngestResult(
            kind=parsed.kind,
            added=len(added),
            duplicates=total - len(added),
            errors=list(parsed.errors),
            users=users,
            profiles_updated=updated,
            warnings=list(parsed.warnings),
        )

    def _refit_if_needed(self, reco: Recommender) -> None:
        """Refit the collaborative model in the background once enough events were folded in.

        One refit at a time; requests keep the old model until the recommender swaps the new one in.
        """
        if reco.needs_refit():
            self._refit_in_background(reco)

    def _refit_in_background(self, reco: Recommender) -> None:
        """Start one background refit; asked while one runs, it runs once more after it (the running
        one may have read the events before the ones that asked)."""
        with self._lock:
            if self._refitting is not None:
                self._refit_again = True
                return

            def run() -> None:
                again = True
                while again:
                    try:
                        reco.refit()
                    except Exception:  # the old model keeps serving; the next event tries again
                        log.exception("background refit of the collaborative model failed")
                    with self._lock:
                        again, self._refit_again = self._refit_again, False
                        if not again:
                            self._refitting = None

            self._refit_again = False
            self._refitting = threading.Thread(target=run, name="mmrec-refit", daemon=True)
            self._refitting.start()

    def refit(self) -> RefitResult:
        """Fit the collaborative hybrid again on every stored event, now, and tell other processes.

        Between refits new events are folded into users' rows at once (``Recommender.observe``);
        a refit also learns from them how items relate, and gives new items a column. The hybrid
        is never saved (it holds every user's rows, and a forget must reach every copy: see
        ``mmrec.privacy``), so a refit is per process: this one fits, and a row in events.sqlite's
        ``refits`` table makes every long-lived Library on the folder (a server) fit again in the
        background on its next read, serving its current model meanwhile. Without events nothing
        is fitted or written (``fitted`` False).
        """
        self.refresh()
        if not self._has_events():
            return RefitResult(str(self.path), False, 0, 0, 0, 0, 0, 0.0, None, None, 0)
        with self._refit_lock:
            self.wait_for_refit()  # a threshold refit in flight: this one reads at least as much
            n_events = int(self.events.counts()["events"])
            built = "recommender" in self._cache
            reco = self.recommender  # building it fits it
            report = reco.refit() if built else reco.last_fit
            assert report is not None
            with self._events_lock:
                recorded = self._writable_events().record_refit()
                self._refits = recorded  # this process has the new fit already
        return RefitResult(
            library=str(self.path),
            fitted=report.fitted,
            users=report.n_users,
            items=report.n_items,
            interactions=report.n_interactions,
            events=n_events,
            pending_events=report.pending_before,
            seconds=report.seconds,
            version=report.version or None,
            version_before=report.version_before or None,
            refits_recorded=recorded,
        )

    def wait_for_refit(self, timeout_s: float | None = None) -> None:
        """Block until a background refit (if any) is done (tests, shutdown)."""
        thread = self._refitting
        if thread is not None:
            thread.join(timeout_s)

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        self.wait_for_refit()
        events = self._cache.pop("events", None)
        if events is not None:
            events.close()
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


class _IndexView:
    """The recommender's index: always the Library's current one, caught up on each search."""

    def __init__(self, library: Library) -> None:
        self.library = library

    def search(
        self, queries: np.ndarray, k: int, allowed_keys: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.library.index.search(queries, k, allowed_keys)


def inspect_file(
    path: Path, models: ModelSet | str = "bundled", device: str = "auto", frame_count: int = 16,
    timeout_s: float = 300.0,
) -> InspectReport:  # fmt: skip
    """Decode and encode one file with the batch encoder's stages (a batch of one) and report it all."""
    from encoders.media import run_guarded
    from encoders.registry import load_models
    from pipelines.decode import DecodeTask, decode_task, spec_for_model_set
    from pipelines.discover import ItemMeta
    from pipelines.item_encoder import EncodeInput, encode_batch

    model_set = load_models(models, device=device) if isinstance(models, str) else models
    task = DecodeTask(path=str(path.resolve()), spec=spec_for_model_set(model_set, True, frame_count))
    media = run_guarded(decode_task, task, timeout_s=timeout_s).media
    (encoded,) = encode_batch([EncodeInput(meta=ItemMeta(), media=media)], model_set)
    described = model_set.describe()
    vectors: dict[str, dict[str, Any]] = {}
    for modality, arr in encoded.vectors.items():
        info = described.get(role_of(modality), {})
        vectors[modality] = {
            "rows": int(arr.shape[0]),
            "dim": int(arr.shape[1]),
            "model": info.get("model"),
            "norm": round(float(np.linalg.norm(arr[0])), 4),
        }
    frames = media.frames
    meta = encoded.metadata
    return InspectReport(
        path=str(path),
        probe=media.info.to_dict(),
        frames=None
        if frames is None
        else {
            "reader": frames.reader,
            "count": len(frames.frames),
            "times_s": [round(float(t), 3) for t in frames.times_s],
        },
        audio={
            str(rate): {"seconds": round(clip.duration_s, 3), "windows": clip.windows}
            for rate, clip in media.audio.items()
        },
        visual_tags=[(str(lbl), float(s)) for lbl, s in meta.get("visual_tags", [])],
        has_speech=meta.get("has_speech"),
        transcript=meta.get("transcript"),
        language=meta.get("language"),
        language_probability=meta.get("language_probability"),
        vectors=vectors,
        warnings=[str(w) for w in media.warnings],
        speech_gate=meta.get("speech_gate"),
    )


def analyze_texts(
    texts: Sequence[str], analyzer: str = "bundled", device: str = "auto"
) -> list[CommentAnalysis]:
    """Language, sentiment and keywords of each text, without a library (``mmrec analyze``)."""
    from encoders.comments import load_analyzer

    return _analyses(load_analyzer(analyzer, device=device), texts)


def evaluate(
    dataset: str | Path = "movielens-100k",
    protocol: str = "ms-recommenders",
    *,
    k: int = 10,
    seeds: Sequence[int] = (42, 43, 44),
    split_by: str | None = None,
    max_users: int | None = None,
    rounds: int = 10,
    explore: float = 0.1,
    library: str | Path | Library | None = None,
    labels: str | Path | None = None,
    queries: str | Path | None = None,
    mode: str = "hybrid",
) -> dict[str, object]:
    """Offline evaluation: what ``mmrec evaluate`` runs. On an interaction dataset (no library
    involved), ``interactive`` replays rounds of feedback for three arms and the others are static
    splits (``mmrec.evaluate.protocols``); the report holds means over seeds plus per-seed figures.
    ``same-label`` (``labels``, k) and ``text-to-item`` (``queries``, ``mode``) measure retrieval on
    ``library`` through ``Library.similar``/``Library.search`` (``mmrec.evaluate.retrieval``)."""
    if protocol in RETRIEVAL_PROTOCOLS:
        return _evaluate_retrieval(protocol, library, labels, queries, k=k, mode=mode)
    for name, value in (("library", library), ("labels", labels), ("queries", queries)):
        if value is not None:
            raise InvalidInputError(
                "evaluate", name, f"only the {' and '.join(RETRIEVAL_PROTOCOLS)} protocols take it"
            )
    if protocol == "interactive":
        from mmrec.evaluate.interactive import run_interactive

        if split_by is not None:
            raise InvalidInputError("evaluate", "split_by", "only the ms-recommenders protocol takes it")
        return run_interactive(dataset, k=k, rounds=rounds, seeds=seeds, explore=explore, max_users=max_users)
    from mmrec.evaluate.protocols import run_evaluation

    return run_evaluation(dataset, protocol, k=k, seeds=seeds, split_by=split_by, max_users=max_users)


RETRIEVAL_PROTOCOLS = ("same-label", "text-to-item")


def _evaluate_retrieval(
    protocol: str,
    library: str | Path | Library | None,
    labels: str | Path | None,
    queries: str | Path | None,
    *,
    k: int,
    mode: str,
) -> dict[str, object]:
    from mmrec.evaluate.retrieval import same_label, text_to_item

    if library is None:
        raise InvalidInputError("evaluate", "library", f"the {protocol} protocol needs a library")
    wanted, other = ("labels", "queries") if protocol == "same-label" else ("queries", "labels")
    given = {"labels": labels, "queries": queries}
    if given[wanted] is None:
        raise InvalidInputError("evaluate", wanted, f"the {protocol} protocol needs a {wanted} file")
    if given[other] is not None:
        raise InvalidInputError("evaluate", other, f"the {protocol} protocol takes no {other} file")
    lib = library if isinstance(library, Library) else Library(library, create=False)
    try:
        if protocol == "same-label":
            return same_label(lib, Path(str(labels)), k=k).to_dict()
        return text_to_item(lib, Path(str(queries)), mode=mode).to_dict()
    finally:
        if lib is not library:
            lib.close()


def _analyses(analyzer: CommentAnalyzer, texts: Sequence[str]) -> list[CommentAnalysis]:
    if isinstance(texts, str):
        raise InvalidInputError("analyze", "texts", "expected a list of texts, got one string")
    for n, text in enumerate(texts, start=1):
        if reason := too_long(str(text), MAX_ANALYZE_CHARS):
            raise InvalidInputError("analyze", f"texts[{n}]", f"text {n} is {reason}; shorten it")
    found = analyzer.analyze(list(texts))
    return [CommentAnalysis(a.text, a.language, float(a.sentiment), list(a.keywords)) for a in found]


@contextlib.contextmanager
def _write_failures(path: Path) -> Iterator[None]:
    """SQLite's "database or disk is full" as one clear LibraryError (the transaction rolled back)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "full" in text or "disk i/o" in text:
            raise LibraryError(
                str(path),
                f"cannot write ({exc}); what was committed is kept: free space and run it again",
            ) from exc
        raise


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_PAGE:
        raise InvalidInputError("query", "k", f"must be an integer within 1..{MAX_PAGE}, got {k!r}")


def _user(user_id: str, source: str) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidInputError(source, "user_id", "must be a non-empty string")
    if reason := too_long(user_id.strip(), MAX_ID_CHARS):
        raise InvalidInputError(source, "user_id", reason)
    return user_id.strip()


def _holds_user(events: EventStore, user_id: str) -> bool:
    """Whether the store holds any row of ``user_id`` (events, comments, served, profile)."""
    return bool(
        events.count_for_user(user_id) or events.served_rows(user_id) or events.get_profile_blob(user_id)
    )


def _rows(rows: Sequence[Mapping[str, object]], source: str) -> Sequence[Mapping[str, object]]:
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise InvalidInputError(source, "rows", "expected a list of objects")
    return rows


def _int_or_none(value: object) -> int | None:
    try:
        return None if value is None else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
