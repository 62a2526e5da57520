"""Media and thumbnail responses with real validators: ETag + If-None-Match -> 304 (Starlette's
``FileResponse`` sets an ETag but still answers 200), Last-Modified + If-Modified-Since, and
Range -> 206 / 416 with the JSON error body instead of Starlette's plain-text one.

Files are only ever the path the catalog stored for an item (``Library.media_path``); nothing a
client sends is joined to a folder.
"""

from __future__ import annotations

import os
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response

from mmrec.server.errors import ApiError

CACHE_CONTROL = "no-cache"  # the browser may keep a copy but must revalidate (cheap: a 304)


def file_etag(stat: os.stat_result) -> str:
    return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches anything."""
    if header.strip() == "*":
        return True
    strong = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == strong for tag in header.split(","))


def not_modified(request_headers: Headers, etag: str, mtime: float | None = None) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    inm = request_headers.get("if-none-match")
    if inm is not None:
        return _etag_matches(inm, etag)
    ims = request_headers.get("if-modified-since")
    if ims is not None and mtime is not None:
        try:
            return int(mtime) <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
    return False


def _check_range(header: str, size: int) -> None:
    """Refuse a bad Range with our JSON body before FileResponse would answer in plain text."""
    try:
        FileResponse._parse_range_header(header, size)
    except RangeNotSatisfiable:
        raise ApiError(
            416,
            f"the range {header!r} is outside the file ({size} bytes)",
            field="Range",
            headers={"Content-Range": f"bytes */{size}"},
        ) from None
    except MalformedRangeHeader as exc:
        raise ApiError(400, f"malformed Range header: {exc.content}", field="Range") from None


def file_response(path: Path, request_headers: Headers, method: str) -> Response:
    """The whole file, a byte range of it, or a 304, for a path the catalog gave us."""
    try:
        stat = path.stat()
    except OSError:
        raise ApiError(
            404, "the item's media file is gone", type="media_not_found", field="item_id"
        ) from None
    etag = file_etag(stat)
    validators = {
        "ETag": etag,
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        "Cache-Control": CACHE_CONTROL,
    }
    if not_modified(request_headers, etag, stat.st_mtime):
        return Response(status_code=304, headers=validators)
    http_range = request_headers.get("range")
    if http_range is not None and method == "GET":
        if_range = request_headers.get("if-range")
        if if_range is None or if_range in (etag, validators["Last-Modified"]):
            _check_range(http_range, stat.st_size)
    return FileResponse(path, stat_result=stat, headers=validators, content_disposition_type="inline")


def bytes_response(data: bytes, mime: str, etag: str, request_headers: Headers) -> Response:
    """A small in-memory body (a thumbnail) with its ETag; 304 when the client has it."""
    quoted = etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'
    headers = {"ETag": quoted, "Cache-Control": CACHE_CONTROL}
    if not_modified(request_headers, quoted):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=mime, headers=headers)
