"""HTTP rerank endpoint in the Cohere / Jina / vLLM shape, for LangChain, LlamaIndex, Haystack and Open WebUI.

`POST /v1/rerank` and `POST /v2/rerank` take the request declared in cohere_http.py (`{model, query,
documents, top_n, return_documents, max_tokens_per_doc, max_chunks_per_doc, raw_scores, instruction}`,
documents as strings or `{"text": ...}`) and answer `{id, model, results: [{index, relevance_score,
document?, scored_chars?}], usage, meta}`.
It runs every call through the same request pipeline as gRPC (API keys, admission,
metrics, access log) and the same core, so no rule exists twice. A body over `limits.max_message_bytes` is
413; the deadline is the request's (header `X-Request-Timeout` or field `timeout_s`, in seconds) or
`limits.http_timeout_s`, whichever is shorter. With `tls.*` set it is served over the same TLS (mutual TLS
included) as gRPC, never in plaintext. `GET /health` answers 200 when the models are ready, 503 otherwise.
The TEI-compatible routes (`tei_http.py`) are served beside these, through the same `HttpApi.run`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel

from crossrank.gateway.core.errors import (
    CrossrankError,
    DeadlineError,
    ErrorCode,
    InvalidArgumentError,
    MessageTooLargeError,
)
from crossrank.gateway.core.pipeline import Call, RequestPipeline, request_id
from crossrank.gateway.core.scoring import CrossEncoderCore, RerankOutcome
from crossrank.gateway.transport import declarations, openapi
from crossrank.gateway.transport.cohere_http import (
    FOREIGN_FIELDS,
    ApiError,
    BilledUnits,
    CohereMeta,
    CohereRerankRequest,
    CohereRerankResponse,
    CohereResult,
    CohereUsage,
    DocumentText,
)
from crossrank.gateway.transport.openapi import Operation

logger = logging.getLogger(__name__)

# The one place where the core's error codes become HTTP statuses (499: the client closed the request).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400, ErrorCode.UNAUTHENTICATED: 401, ErrorCode.NOT_FOUND: 404,
    ErrorCode.MESSAGE_TOO_LARGE: 413, ErrorCode.RESOURCE_EXHAUSTED: 429, ErrorCode.CANCELLED: 499,
    ErrorCode.INTERNAL: 500, ErrorCode.UNAVAILABLE: 503, ErrorCode.DEADLINE_EXCEEDED: 504,
}
# Retry-After (seconds) on 429 and 503: both are retryable, and a backend restart takes a few seconds.
RETRY_AFTER_S = "1"
_ERROR_STATUSES = {400: "Bad input, naming its field", 401: "Missing or wrong API key", 404: "Unknown model",
                   413: "Body over limits.max_message_bytes", 429: "At capacity; retry with backoff",
                   503: "The models are not ready", 504: "The deadline passed"}
METHOD = "HttpRerank"  # the method label of HTTP rerank calls in metrics and the access log


class HealthBody(BaseModel):
    status: Literal["SERVING", "NOT_SERVING"]

T = TypeVar("T")
# What a route does once its call is admitted: (its record, its JSON body or None for a GET, its deadline).
Handler = Callable[[Call, "dict[str, Any] | None", float], Awaitable[T]]


def _timeout(request: web.Request, body: dict[str, Any], default: float) -> float:
    header = request.headers.get("X-Request-Timeout")
    asked: Any = body.get("timeout_s")
    if header is not None:
        try:
            asked = float(header)
        except ValueError:
            raise InvalidArgumentError("X-Request-Timeout must be a number of seconds", "INVALID_FIELD",
                                       "X-Request-Timeout") from None
    if asked is None:
        return default
    if isinstance(asked, bool) or not isinstance(asked, (int, float)) or not asked > 0:
        raise InvalidArgumentError("the timeout must be a positive number of seconds", "INVALID_FIELD",
                                   "timeout_s")
    return min(float(asked), default)


class HttpApi:
    def __init__(self, core: CrossEncoderCore, pipeline: RequestPipeline, ready: Any,
                 max_body_bytes: int = 32 * 1024 * 1024, timeout_s: float = 60.0, max_in_flight: int = 0) -> None:
        self.core = core
        self._pipeline = pipeline
        self._ready = ready  # callable returning True when health is SERVING
        self._max_body_bytes = max_body_bytes
        self._timeout_s = timeout_s
        self.max_in_flight = max_in_flight  # requests scored at once (admission), for TEI's /info
        self._document: dict[str, Any] = {}

    def operations(self) -> list[Operation]:
        """Every route, as the router registers it and the OpenAPI document describes it."""
        from crossrank.gateway.transport import tei_http

        cohere = {200: ("Results, best first", CohereRerankResponse),
                  **{status: (text, ApiError) for status, text in _ERROR_STATUSES.items()}}
        summary = "Rerank documents against a query ({} shape; Jina, vLLM and Infinity send the same)"
        return [
            Operation("POST", "/v1/rerank", self.rerank, "rerankV1", summary.format("Cohere v1"), "Cohere-compatible",
                      CohereRerankRequest, cohere),
            Operation("POST", "/v2/rerank", self.rerank, "rerankV2", summary.format("Cohere v2"), "Cohere-compatible",
                      CohereRerankRequest, cohere),
            *tei_http.TeiRoutes(self).operations(),
            Operation("GET", "/health", self.health, "health", "Whether the models are ready", "Server",
                      responses={200: ("Serving", HealthBody), 503: ("Not serving yet (or any more)", HealthBody)}),
            Operation("GET", "/openapi.json", self.openapi, "openapi", "This document", "Server",
                      responses={200: ("The OpenAPI 3.1 document", dict[str, Any])}),
            Operation("GET", "/docs", self.docs, "docs", "A browsable page of this document", "Server",
                      responses={200: ("The page", str), 503: ("swagger-ui-py is not installed", ApiError)}),
        ]

    def app(self) -> web.Application:
        # aiohttp enforces the cap while reading; `_body` turns its refusal into the documented 413.
        application = web.Application(client_max_size=self._max_body_bytes)
        operations = self.operations()
        for operation in operations:
            application.router.add_route(operation.method, operation.path, operation.handler)
        self._document = openapi.document(operations)
        assets = openapi.assets_directory()
        if assets is not None:
            application.router.add_static(openapi.ASSETS, assets)
        return application

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self._document)

    async def docs(self, request: web.Request) -> web.Response:
        if openapi.assets_directory() is None:
            rid = request_id(request.headers.get("x-request-id"))
            return web.json_response({
                "message": "the /docs page needs the swagger-ui-py package (pip install swagger-ui-py); "
                           "/openapi.json serves the document", "reason": "DOCS_UNAVAILABLE", "request_id": rid,
                "field_violations": []}, status=503)
        return web.Response(text=openapi.DOCS_PAGE.format(assets=openapi.ASSETS), content_type="text/html")

    async def run(self, request: web.Request, method: str, rid: str, handle: Handler[T],
                  read_body: bool = True) -> T:
        """One call through the shared pipeline: API key, admission (by the body's declared size, without one
        by the most a body may hold, before reading it), the body read as a JSON object, the deadline (header
        `X-Request-Timeout` or field `timeout_s`, capped by `limits.http_timeout_s`), metrics and the access
        log. `handle` does the route's work; a `CrossrankError` from any step propagates for the route's own
        error shape."""
        metadata = [("authorization", request.headers.get("Authorization", ""))]
        size = min(request.content_length or self._max_body_bytes, self._max_body_bytes) if read_body else 0
        async with self._pipeline.call(method, rid, metadata, size=size) as call:
            body = await self._body(request) if read_body else None
            timeout = _timeout(request, body or {}, self._timeout_s)
            try:
                return await asyncio.wait_for(handle(call, body, timeout), timeout)
            except asyncio.TimeoutError:
                raise DeadlineError() from None

    async def health(self, request: web.Request) -> web.Response:
        ready = bool(self._ready())
        body = HealthBody(status="SERVING" if ready else "NOT_SERVING")
        return web.json_response(body.model_dump(), status=200 if ready else 503)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > self._max_body_bytes:
            raise MessageTooLargeError(self._max_body_bytes)  # declared too large: refused before reading
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise MessageTooLargeError(self._max_body_bytes) from None
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidArgumentError("the body is not valid JSON", "MALFORMED_REQUEST") from None
        if not isinstance(body, dict):
            raise InvalidArgumentError("the body must be a JSON object", "MALFORMED_REQUEST")
        return body

    async def _cohere_rerank(self, call: Call, body: dict[str, Any] | None, timeout: float) -> RerankOutcome:
        asked = declarations.validate(CohereRerankRequest, body, FOREIGN_FIELDS)
        query = asked.query_for(timeout)
        call.model, call.pairs = query.model, len(query.documents)
        outcome = await self.core.rerank(query)
        call.model = outcome.model
        call.scored_pairs, call.tokens = outcome.usage.pairs, outcome.usage.tokens
        return outcome

    async def rerank(self, request: web.Request) -> web.Response:
        rid = request_id(request.headers.get("x-request-id"))
        headers = {"x-request-id": rid}
        try:
            outcome = await self.run(request, METHOD, rid, self._cohere_rerank)
            answer = CohereRerankResponse(
                id=rid, model=outcome.model,
                results=[CohereResult(index=r.index, relevance_score=r.score, scored_chars=r.scored_chars,
                                      document=None if r.document is None else DocumentText(text=r.document))
                         for r in outcome.results],
                usage=CohereUsage(pairs=outcome.usage.pairs, total_tokens=outcome.usage.tokens,
                                  rescored=outcome.usage.rescored),
                meta=CohereMeta(billed_units=BilledUnits(search_units=1)))
            return web.json_response(answer.model_dump(exclude_none=True), headers=headers)
        except CrossrankError as exc:
            status = HTTP_STATUS[exc.code]
            if status in (429, 503):  # retryable: say when (a stub or Triton restart takes a few seconds)
                headers["Retry-After"] = RETRY_AFTER_S
            return web.json_response({
                "message": exc.message, "reason": exc.reason, "request_id": rid,
                "field_violations": [{"field": v.field, "description": v.description} for v in exc.violations],
            }, status=status, headers=headers)
        except Exception:  # logged with its traceback by the pipeline
            return web.json_response({"message": f"internal error (request id {rid})", "reason": "INTERNAL",
                                      "request_id": rid}, status=500, headers=headers)


def tls_context(cert_file: str, key_file: str, client_ca_file: str = "") -> ssl.SSLContext:
    """The HTTP door's TLS: the gRPC port's certificate, and its client CA for mutual TLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def start(api: HttpApi, host: str, port: int,
                tls: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    logger.info("HTTP rerank API on %s://%s:%d (POST /v1/rerank, /v2/rerank; GET /health)",
                "https" if tls else "http", host, bound)
    return runner, bound
