"""``create_app``: the HTTP API, a thin layer over one shared ``mmrec.Library``.

Every route validates its input, runs the blocking Library call on a bounded thread pool and
returns the result's ``to_dict()``; nothing here knows about models, indexes or SQL. Item ids are
only ever looked up in the catalog (ids contain ``/``: they are relative paths), never joined to a
folder, so ``..%2F..%2Fetc%2Fpasswd`` is just an unknown id: 404.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import anyio
from fastapi import Body, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import Field

from mmrec import __version__
from mmrec.errors import ItemNotFoundError, MmrecError
from mmrec.search import SearchFilters
from mmrec.server import errors, schemas
from mmrec.server.errors import ApiError
from mmrec.server.guard import Guard
from mmrec.server.media import bytes_response, file_response

if TYPE_CHECKING:
    from mmrec.api import Library

log = logging.getLogger("mmrec.server")

T = TypeVar("T")

STATIC_DIR = Path(__file__).resolve().parent / "static"
KIND = Literal["video", "audio", "image", "text"]
MODE = Literal["hybrid", "dense", "lexical"]  # mmrec.search.SEARCH_MODES (a test keeps them equal)
MAX_K = 500
MAX_ROWS = 10_000
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many results.")]
UserId = Annotated[str, PathParam(min_length=1, max_length=256)]
Rows = Annotated[list[dict[str, schemas.JsonScalar]], Field(max_length=MAX_ROWS)]

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": schemas.ErrorBody, "description": text}
    for status, text in (
        (404, "Unknown item, user or route"),
        (422, "Bad input; `field` names it"),
        (429, "Above the concurrency bound; retry"),
        (500, "Unexpected server error (details only in the server log)"),
    )
}
_WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    401: {"model": schemas.ErrorBody, "description": "API key missing or wrong"},
    413: {"model": schemas.ErrorBody, "description": "Request body above the size limit"},
}
_MEDIA_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    416: {"model": schemas.ErrorBody, "description": "Range outside the file"},
}


async def search_filters(
    kind: Annotated[KIND | None, Query(description="Only items of this media kind.")] = None,
    min_duration: Annotated[
        float | None, Query(ge=0, description="Only items this long or longer (s).")
    ] = None,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only items with this tag.")
    ] = None,
) -> SearchFilters:
    return SearchFilters(kind=kind, min_duration=min_duration, tag=tag)


Filters = Annotated[SearchFilters, Depends(search_filters)]

_PLACEHOLDER = """<!doctype html><meta charset="utf-8"><title>mmrec</title>
<h1>mmrec</h1><p>The web page is not installed; the API is documented at <a href="/docs">/docs</a>.</p>
"""


def payload(result: object) -> object:
    """The JSON form of a Library result: its ``to_dict()``, else its dataclass fields."""
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    if isinstance(result, list):
        return [payload(r) for r in result]
    return result


class _WarmUp:
    """Loads models, fusion, index and recommender in a background thread, so ``/health`` answers
    liveness at once and readiness when the first query will no longer pay for loading."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.done = threading.Event()
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mmrec-warm-up", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Let a warm-up in progress finish before the process exits: native model threads killed
        mid-load abort the interpreter ("terminate called without an active exception")."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self.library.warm_up()
        except MmrecError as exc:
            self.error = str(exc)
            log.error("warm-up failed: %s", exc)
        except Exception:
            self.error = "warm-up failed; the server log has the details"
            log.exception("warm-up failed")
        else:
            self.done.set()
            log.info("warm-up done: ready")


def create_app(
    library: Library,
    *,
    api_key: str | None = None,
    max_upload_bytes: int = 64 << 20,
    max_concurrency: int = 32,
    record_served: bool = True,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """The FastAPI app over ``library`` (shared by all threads; ``mmrec.Library`` is thread-safe).

    ``api_key``: when set, POST/PUT/PATCH/DELETE need it (``Authorization: Bearer KEY`` or
    ``X-API-Key``). ``max_upload_bytes`` bounds every request body (413). ``max_concurrency`` bounds
    requests in flight under ``/api`` (429 above it) and the threads running Library calls.
    ``record_served``: recommendations served here are written back as impressions.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be >= 1")
    if max_upload_bytes < 1:
        raise ValueError("max_upload_bytes must be >= 1")
    limiter = anyio.CapacityLimiter(max_concurrency)
    warm = _WarmUp(library)

    async def run(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm.start()
        yield
        await anyio.to_thread.run_sync(warm.stop)

    app = FastAPI(
        title="mmrec",
        version=__version__,
        summary="Search, similar content, profiles and explained recommendations over one media library.",
        lifespan=lifespan,
    )
    errors.install(app)

    # ------------------------------------------------------------------ helpers
    def known_item(item_id: str) -> str:
        """Refuse anything that is not a catalog id before a Library call could treat it as a path."""
        record = library.store.get(item_id)
        if record is None or record.key is None or record.status != "ok":
            raise ItemNotFoundError(item_id)
        return item_id

    def similar_by_id(item_id: str, k: int, filters: SearchFilters) -> object:
        return library.similar(known_item(item_id), k=k, filters=filters)

    # ------------------------------------------------------------------ health and page
    @app.get("/health", response_model=schemas.Health, tags=["server"])
    async def health() -> JSONResponse:
        """Liveness (this answers at once) and readiness (models loaded)."""
        return JSONResponse({"status": "ok", "ready": warm.done.is_set(), "error": warm.error})

    @app.get("/", include_in_schema=False)
    async def index_page() -> Response:
        index = STATIC_DIR / "index.html"
        if index.is_file():
            return FileResponse(index, media_type="text/html")
        return HTMLResponse(_PLACEHOLDER)

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ------------------------------------------------------------------ search and items
    @app.get("/api/search", response_model=schemas.SearchResponse, responses=_ERRORS, tags=["search"])
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=2000, description="Text, in any language.")],
        filters: Filters,
        k: K = 10,
        mode: Annotated[
            MODE,
            Query(
                description="hybrid (default): meaning and exact words fused by rank; dense: meaning "
                "only; lexical: exact words only (full-text, bm25)."
            ),
        ] = "hybrid",
    ) -> JSONResponse:
        """Text -> items (titles, descriptions, tags, transcripts, and pictures/sound through the
        fusion's bridges). Each hit carries its per-modality score contributions and ``matched``:
        which side (dense, lexical) ranked it where, and the words it matched per field."""
        if not q.strip():
            raise ApiError(422, "the query is empty", field="q")
        return JSONResponse(payload(await run(library.search, q, k=k, filters=filters, mode=mode)))

    @app.post("/api/similar", response_model=schemas.SearchResponse, responses=_WRITE_ERRORS, tags=["search"])
    async def similar_to_upload(
        file: Annotated[UploadFile, File(description="A video, audio or image file, encoded on the fly.")],
        filters: Filters,
        k: K = 10,
    ) -> JSONResponse:
        """Items like an uploaded file (nothing is stored)."""
        data = await file.read()
        if not data:
            raise ApiError(422, "the uploaded file is empty", field="file")
        name = PurePath(file.filename or "upload").name or "upload"
        result = await run(library.similar_to_upload, data, name, k=k, filters=filters)
        return JSONResponse(payload(result))

    @app.get("/api/items", response_model=schemas.ItemPage, responses=_ERRORS, tags=["items"])
    async def items(
        filters: Filters,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> JSONResponse:
        """The catalog, a page at a time."""
        return JSONResponse(payload(await run(library.items, offset=offset, limit=limit, filters=filters)))

    # Routes with a suffix come before the bare item route: ``{item_id:path}`` would swallow them.
    @app.get(
        "/api/items/{item_id:path}/similar",
        response_model=schemas.SearchResponse,
        responses=_ERRORS,
        tags=["items"],
    )
    async def similar(item_id: str, filters: Filters, k: K = 10) -> JSONResponse:
        """Items like this one (no model runs: the item's stored vector is the query)."""
        return JSONResponse(payload(await run(similar_by_id, item_id, k, filters)))

    @app.get(
        "/api/items/{item_id:path}/thumbnail",
        response_class=Response,
        responses={200: {"content": {"image/*": {}}}, **_MEDIA_ERRORS},
        tags=["items"],
    )
    async def thumbnail(item_id: str, request: Request) -> Response:
        """The item's picture (video keyframe, downscaled image, audio waveform), with ETag/304."""
        thumb = await run(library.thumbnail, item_id)
        if thumb is None:  # a known item without a picture (unknown ids raise ItemNotFoundError)
            raise ApiError(404, f"item {item_id!r} has no thumbnail", type="no_thumbnail", field="item_id")
        return bytes_response(thumb.data, thumb.mime, thumb.etag, request.headers)

    @app.head("/api/items/{item_id:path}/media", include_in_schema=False)
    @app.get(
        "/api/items/{item_id:path}/media",
        response_class=Response,
        responses={200: {"content": {"video/*": {}, "audio/*": {}, "image/*": {}}}, **_MEDIA_ERRORS},
        tags=["items"],
    )
    async def media(item_id: str, request: Request) -> Response:
        """The item's media file (Range -> 206 for players; ETag/Last-Modified -> 304)."""
        path = await run(library.media_path, item_id)
        return await run(file_response, path, request.headers, request.method)

    @app.get(
        "/api/items/{item_id:path}", response_model=schemas.ItemDetail, responses=_ERRORS, tags=["items"]
    )
    async def item(item_id: str) -> JSONResponse:
        """One item: metadata, modalities and attention weights."""
        return JSONResponse(payload(await run(library.item, item_id)))

    # ------------------------------------------------------------------ users
    @app.get(
        "/api/users/{user_id}/profile",
        response_model=schemas.ProfileSummary,
        responses=_ERRORS,
        tags=["users"],
    )
    async def profile(user_id: UserId) -> JSONResponse:
        """Interests (weights, keywords, items), negatives and modality preferences."""
        return JSONResponse(payload(await run(library.profile, user_id)))

    @app.get(
        "/api/users/{user_id}/recommendations",
        response_model=schemas.RecommendationList,
        responses=_ERRORS,
        tags=["users"],
    )
    async def recommendations(
        user_id: UserId,
        k: K = 10,
        diversity: Annotated[
            float, Query(ge=0.0, le=1.0, description="0 = pure relevance, 1 = maximal spread.")
        ] = 0.0,
        explore: Annotated[
            float | None,
            Query(ge=0.0, le=1.0, description="Share of exploratory picks (default: the recommender's)."),
        ] = None,
    ) -> JSONResponse:
        """Recommendations with their reasons. Served items are recorded as impressions unless the
        server runs with ``--no-record-served``."""
        result = await run(
            library.recommend, user_id, k=k, diversity=diversity, explore=explore, record_served=record_served
        )
        return JSONResponse(payload(result))

    @app.put(
        "/api/users/{user_id}/description",
        response_model=schemas.DescribeResult,
        responses=_WRITE_ERRORS,
        tags=["users"],
    )
    async def describe(body: schemas.DescriptionIn, user_id: UserId) -> JSONResponse:
        """Set the user's self-description (cold start, and a standing interest)."""
        if not body.text.strip():
            raise ApiError(422, "the description is empty", field="text")
        return JSONResponse(payload(await run(library.describe_user, user_id, body.text)))

    def require_key(request: Request) -> None:
        """A user's export is personal data: like writes, it needs the API key when one is set."""
        if not api_key:
            return
        auth = request.headers.get("authorization", "")
        sent = (
            auth[7:].strip()
            if auth[:7].lower() == "bearer "
            else request.headers.get("x-api-key", "").strip()
        )
        if not hmac.compare_digest(sent.encode(), api_key.encode()):
            raise ApiError(
                401,
                "a user's export needs the API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
                field="Authorization",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.get(
        "/api/users/{user_id}/export",
        response_model=schemas.UserExport,
        responses=_WRITE_ERRORS,
        tags=["users"],
    )
    async def export_user(user_id: UserId, request: Request) -> JSONResponse:
        """Everything held about the user: events, comments with analyses, served lists, profile
        summary and self-description. Needs the API key when the server has one."""
        require_key(request)
        return JSONResponse(payload(await run(library.export_user, user_id)))

    @app.delete(
        "/api/users/{user_id}",
        response_model=schemas.ErasureReceipt,
        responses=_WRITE_ERRORS,
        tags=["users"],
    )
    async def forget_user(user_id: UserId) -> JSONResponse:
        """Erase the user everywhere (rows, profile, served lists, their share of popularity and of
        the collaborative model, SQLite free pages and WAL) and return the erasure receipt."""
        return JSONResponse(payload(await run(library.forget_user, user_id)))

    # ------------------------------------------------------------------ feedback
    @app.post("/api/events", response_model=schemas.IngestResult, responses=_WRITE_ERRORS, tags=["feedback"])
    async def post_events(
        rows: Annotated[
            Rows,
            Body(
                description="Rows like `mmrec ingest` reads: user_id, item_id, event (view, like, dislike, "
                "skip, rate, ...), optional value and timestamp. Bad rows come back in `errors`, the rest "
                "are stored and the users' profiles update at once.",
                examples=[[{"user_id": "u1", "item_id": "clips/cat.mp4", "event": "like"}]],
            ),
        ],
    ) -> JSONResponse:
        return JSONResponse(payload(await run(library.add_events, rows)))

    @app.post(
        "/api/comments", response_model=schemas.IngestResult, responses=_WRITE_ERRORS, tags=["feedback"]
    )
    async def post_comments(
        rows: Annotated[
            Rows,
            Body(
                description="Rows: user_id, item_id, text, optional timestamp. Each comment is analysed "
                "(language, sentiment, keywords) and updates the user's profile.",
                examples=[[{"user_id": "u1", "item_id": "clips/cat.mp4", "text": "太可爱了! lovely"}]],
            ),
        ],
    ) -> JSONResponse:
        return JSONResponse(payload(await run(library.add_comments, rows)))

    @app.post("/api/refit", response_model=schemas.RefitResult, responses=_WRITE_ERRORS, tags=["feedback"])
    async def refit() -> JSONResponse:
        """Fit the collaborative model again on every stored event, in this server (new events are
        folded in at once without it; a refit learns item relations and new items). Needs the API
        key when the server has one. Other servers on the library follow on their next request."""
        return JSONResponse(payload(await run(library.refit)))

    # ------------------------------------------------------------------ outer layers
    app.add_middleware(
        Guard, api_key=api_key, max_body_bytes=max_upload_bytes, max_concurrency=max_concurrency
    )
    if cors_origins:  # added last, so it is outermost: preflights are answered before the key check
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Range", "If-None-Match"],
            expose_headers=["ETag", "Content-Range", "Accept-Ranges"],
        )
    return app
