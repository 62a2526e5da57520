"""One JSON error shape for every failure: ``{"error": {"type", "message", "field"}}``.

Typed library errors map to their status (unknown id 404, bad input 422); FastAPI's own
validation errors are rewritten to name the field; anything unexpected is logged here with its
traceback and answered with a generic 500, so no response body ever carries a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from encoders.media.errors import MediaError
from mmrec.errors import (
    InvalidInputError,
    ItemNotFoundError,
    LibraryError,
    MmrecError,
)
from mmrec.recommend.recommender import UnknownUserError
from mmrec.store.library import LexicalIndexMissingError

log = logging.getLogger("mmrec.server")

_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    416: "range_not_satisfiable",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(StarletteHTTPException):
    """An HTTP error raised by the server itself, with the JSON fields already chosen."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=dict(headers) if headers else None)
        self.type = type or _STATUS_TYPES.get(status, "error")
        self.field = field


def error_body(type: str, message: str, field: str | None = None) -> dict[str, dict[str, str | None]]:
    return {"error": {"type": type, "message": message, "field": field}}


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_body(type or _STATUS_TYPES.get(status, "error"), message, field)
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _field_of(loc: Sequence[object]) -> str:
    """``("query", "k")`` -> ``k``; ``("body", 0, "event")`` -> ``body[0].event``."""
    if len(loc) <= 1:
        return str(loc[0]) if loc else "request"
    head, rest = str(loc[0]), loc[1:]
    if head in ("query", "path", "header", "cookie"):
        return ".".join(str(p) for p in rest)
    out = head
    for part in rest:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("request",), "msg": "invalid request"}
    if first.get("type") == "json_invalid":  # loc holds a character offset, not a field
        field = "body"
        message = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')})"
    else:
        field = _field_of(tuple(first.get("loc", ("request",))))
        message = f"{field}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(422, message, field=field)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if isinstance(exc, ApiError):
        return error_response(status, str(exc.detail), type=exc.type, field=exc.field, headers=exc.headers)
    message = str(exc.detail) if isinstance(exc.detail, str) and exc.detail else "error"
    if status == 404:
        message = f"no route {request.url.path!r}; see /docs for the API"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path!r}"
    return error_response(status, message, headers=exc.headers)


async def _mmrec(request: Request, exc: Exception) -> JSONResponse:
    """Typed library errors: the message is written for users and names the file or field."""
    if isinstance(exc, ItemNotFoundError):
        return error_response(404, str(exc), type="item_not_found", field="item_id")
    if isinstance(exc, UnknownUserError):
        return error_response(404, str(exc), type="unknown_user", field="user_id")
    if isinstance(exc, InvalidInputError):
        return error_response(422, exc.reason, type="invalid_input", field=exc.field)
    if isinstance(exc, LexicalIndexMissingError):  # an older library: say how to build it (no path)
        message = (
            "this library has no full-text index yet (made by an older mmrec); build it with "
            "`mmrec check --repair` on the library, or search with mode=dense"
        )
        return error_response(503, message, type="lexical_index_missing", field="mode")
    if isinstance(exc, LibraryError):
        log.error("library unavailable: %s", exc)
        return error_response(503, "the library cannot be read right now", type="library_unavailable")
    return error_response(400, str(exc), type=type(exc).__name__)


async def _media(request: Request, exc: Exception) -> JSONResponse:
    """An uploaded file that cannot be decoded; its temporary path means nothing to the client."""
    assert isinstance(exc, MediaError)
    return error_response(422, f"the uploaded file cannot be read: {exc.reason}", field="file")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(MmrecError, _mmrec)
    app.add_exception_handler(MediaError, _media)
