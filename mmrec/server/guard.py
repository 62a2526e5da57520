"""The server's front door, one small ASGI middleware: API key, concurrency bound, body limit, and
a last-resort 500 that never shows a traceback.

It is plain ASGI (not ``BaseHTTPMiddleware``) because it runs on every request and must be able to
answer before the body is read: a refused upload is refused from its headers, and one that lies
about its length is cut off while it is being read.
"""

from __future__ import annotations

import hmac
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmrec.server.errors import ApiError, error_response

log = logging.getLogger("mmrec.server")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Guard:
    """Checks run in this order: key (401), concurrency (429), declared size (413), then the app,
    with the body counted as it streams in (413 once it passes the limit)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_body_bytes: int,
        max_concurrency: int,
        gated_prefix: str = "/api/",
    ) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self.gated_prefix = gated_prefix
        self.in_flight = 0  # only touched from the event loop's thread

    def _authorised(self, scope: Scope) -> bool:
        assert self.api_key is not None
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                candidate = value[7:].strip()
            elif name == b"x-api-key":
                candidate = value.strip()
            else:
                continue
            if hmac.compare_digest(candidate, self.api_key):
                return True
        return False

    def _declared_length(self, scope: Scope) -> int | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    raise ApiError(400, "Content-Length is not a number", field="Content-Length") from None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if self.api_key is not None and method in WRITE_METHODS and not self._authorised(scope):
            response = error_response(
                401,
                "this server requires an API key for writes: send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
                field="Authorization",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        gated = scope["path"].startswith(self.gated_prefix)
        if gated and self.in_flight >= self.max_concurrency:
            response = error_response(
                429,
                f"the server is answering {self.max_concurrency} requests already; retry shortly",
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        try:
            declared = self._declared_length(scope)
        except ApiError as exc:
            await error_response(exc.status_code, str(exc.detail), field=exc.field)(scope, receive, send)
            return
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return

        received = 0
        limit = self.max_body_bytes

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiError(413, self._too_large_message(), field="body")
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        if gated:
            self.in_flight += 1
        try:
            await self.app(scope, counted_receive, tracked_send)
        except ApiError as exc:  # raised while a body was read outside a route (e.g. static files)
            if started:
                raise
            response = error_response(exc.status_code, str(exc.detail), type=exc.type, field=exc.field)
            await response(scope, receive, send)
        except Exception:
            log.exception("unhandled error in %s %s", method, scope["path"])
            if started:
                raise
            await error_response(500, "internal error; the server log has the details")(scope, receive, send)
        finally:
            if gated:
                self.in_flight -= 1

    def _too_large_message(self) -> str:
        return f"the request body is larger than this server accepts ({self.max_body_bytes} bytes)"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(413, self._too_large_message(), field="body")(scope, receive, send)
