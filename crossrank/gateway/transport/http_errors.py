"""The HTTP API's one error shape, `{"message", "reason", "request_id", "field_violations"}`, for every error
the HTTP port answers: the API's own (a `CrossrankError`), the router's (404 unknown path, 405 wrong method)
and the HTTP parser's (400 for bytes that are not HTTP/1.1), which aiohttp would otherwise answer in plain
text and log with a traceback. Also the one table from the core's error codes to HTTP statuses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from crossrank.gateway.core.errors import CrossrankError, ErrorCode, echoed
from crossrank.gateway.core.pipeline import Call, request_id

logger = logging.getLogger(__name__)

# The one place where the core's error codes become HTTP statuses (499: the client closed the request, never
# sent, for the access log).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400, ErrorCode.UNAUTHENTICATED: 401, ErrorCode.NOT_FOUND: 404,
    ErrorCode.READ_TIMEOUT: 408, ErrorCode.MESSAGE_TOO_LARGE: 413, ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RESOURCE_EXHAUSTED: 429, ErrorCode.CANCELLED: 499, ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503, ErrorCode.DEADLINE_EXCEEDED: 504,
}
# Seconds a client should wait before retrying a 429 or 503.
RETRY_AFTER_S = "1"
# The reasons of the statuses that aiohttp itself answers.
_FRAMEWORK_REASONS = {400: "MALFORMED_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                      413: "MESSAGE_TOO_LARGE", 431: "MALFORMED_REQUEST"}


def status_of(error: BaseException | None) -> int:
    """The HTTP status a call answers (or would have answered: 499 when its client left)."""
    if error is None:
        return 200
    if isinstance(error, CrossrankError):
        return HTTP_STATUS[error.code]
    if isinstance(error, asyncio.CancelledError):
        return 499
    return 500


def call_status(call: Call) -> int:
    return status_of(call.error)


def retry_headers(status: int) -> dict[str, str]:
    """`Retry-After` on the retryable statuses (429, 503): a backend restart takes a few seconds."""
    return {"Retry-After": RETRY_AFTER_S} if status in (429, 503) else {}


def error_response(status: int, message: str, reason: str, rid: str, violations: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message, "reason": reason, "request_id": rid,
                              "field_violations": violations or []},
                             status=status, headers={"x-request-id": rid, **retry_headers(status), **(headers or {})})


def from_error(error: CrossrankError, rid: str) -> web.Response:
    response = error_response(status_of(error), error.message, error.reason, rid,
                              [{"field": v.field, "description": v.description} for v in error.violations])
    if error.code is ErrorCode.READ_TIMEOUT:
        response.force_close()  # a stalled client: not worth aiohttp's lingering wait for the rest of its body
    return response


@web.middleware
async def json_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The router's refusals (404, 405, and any other HTTPException) in the API's shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        rid = request_id(request.headers.get("x-request-id"))
        reason = _FRAMEWORK_REASONS.get(exc.status, f"HTTP_{exc.status}")
        if exc.status == 404:
            message = f"no such path {echoed(request.path)}: the API serves POST /v1/rerank, /v2/rerank, GET /health"
        elif exc.status == 405:
            message = f"{echoed(request.method)} is not allowed on {echoed(request.path)}; allowed: " + \
                      exc.headers.get("Allow", "")
        else:
            message = exc.reason
        kept = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        return error_response(exc.status, message, reason, rid, headers=kept)


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering bytes its parser refuses in the API's shape; logged in one line,
    without a traceback (malformed requests are the client's problem, and must not flood the log)."""

    __slots__ = ()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            logger.error("HTTP request failed in the server (status %d)", status, exc_info=exc)
        else:
            logger.info("refused a malformed HTTP request (status %d, %s)", status, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already; the connection is closed instead")
        rid = request_id(None)
        reason = _FRAMEWORK_REASONS.get(status, "INTERNAL" if status >= 500 else f"HTTP_{status}")
        text = (f"internal error (request id {rid})" if status >= 500 else
                f"the request is not valid HTTP/1.1 ({type(exc).__name__ if exc else 'refused'})")
        response = error_response(status, text, reason, rid)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An AppRunner whose connections answer parser errors in the API's shape."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds its Server inside the Application; this swaps in the subclass that makes our handler.
        server.__class__ = _JsonErrorServer
        return server
