"""HTTP rerank endpoint in the Cohere / Jina / vLLM shape, for LangChain, LlamaIndex, Haystack and Open WebUI.

`POST /v1/rerank` and `POST /v2/rerank` take the request declared in cohere_http.py (`{model, query,
documents, top_n, return_documents, max_tokens_per_doc, max_chunks_per_doc, raw_scores, instruction}`,
documents as strings or `{"text": ...}`) and answer `{id, model, results: [{index, relevance_score,
document?, scored_chars?}], usage, meta}`.
It runs every call through the same request pipeline as gRPC (API keys, admission,
metrics, access log) and the same core, so no rule exists twice. The body must be JSON (415 otherwise) and
arrive within the read deadline (408, `http_body`); a body over `limits.max_message_bytes` is 413; the
deadline is the request's (header `X-Request-Timeout` or field `timeout_s`, in seconds) or
`limits.http_timeout_s`, whichever is shorter. A connection must send a whole request head within
`limits.http_header_timeout_s` of opening or of its last response. Every error, the framework's own
included, comes in one JSON shape (`http_errors`). With `tls.*` set it is served over the same TLS (mutual
TLS included) as gRPC, never in plaintext. `GET /health` answers 200 when the models are ready, 503 otherwise.
The TEI-compatible routes (`tei_http.py`) are served beside these, through the same `HttpApi.run`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel

from crossrank.gateway.core.admission import Reservation
from crossrank.gateway.core.errors import CrossrankError, DeadlineError, InvalidArgumentError
from crossrank.gateway.core.pipeline import CLOSE_GRACE_S, Call, RequestPipeline, request_id
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
from crossrank.gateway.transport.http_body import ReadLimits, decode_json, require_json
from crossrank.gateway.transport.http_body import read_body as read_body_of
from crossrank.gateway.transport.http_errors import (
    JsonErrorRunner,
    call_status,
    error_response,
    from_error,
    json_errors,
)
from crossrank.gateway.transport.openapi import Operation

logger = logging.getLogger(__name__)

_ERROR_STATUSES = {400: "Bad input, naming its field", 401: "Missing or wrong API key", 404: "Unknown model",
                   408: "The body did not arrive within the read deadline", 413: "Body over limits.max_message_bytes",
                   415: "The body is not JSON", 429: "At capacity; retry with backoff",
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
    try:
        return min(float(asked), default)
    except OverflowError:  # an integer beyond every float: longer than the default anyway
        return default


class HttpApi:
    def __init__(self, core: CrossEncoderCore, pipeline: RequestPipeline, ready: Any,
                 max_body_bytes: int = 32 * 1024 * 1024, timeout_s: float = 60.0, max_in_flight: int = 0,
                 read_timeout_s: float = 10.0, min_read_bytes_per_s: float = 1024 * 1024,
                 header_timeout_s: float = 75.0) -> None:
        self.core = core
        self._pipeline = pipeline
        self._ready = ready  # callable returning True when health is SERVING
        self._read = ReadLimits(max_body_bytes, read_timeout_s, min_read_bytes_per_s)
        self._timeout_s = timeout_s
        self.header_timeout_s = header_timeout_s
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
        # The body is read (and its size capped) by http_body; the middleware gives the router's refusals the
        # API's error shape.
        application = web.Application(client_max_size=self._read.max_bytes, middlewares=[json_errors])
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
        """One call through the shared pipeline: API key, the body received (JSON only, under the read
        deadline, its bytes counted by admission as they arrive), admission, the body parsed as a JSON object,
        the deadline (header `X-Request-Timeout` or field `timeout_s`, capped by `limits.http_timeout_s`),
        metrics and the access log. `handle` does the route's work; a `CrossrankError` from any step propagates
        for the route's own error shape."""
        metadata = [("authorization", request.headers.get("Authorization", ""))]
        received: list[bytes] = []

        async def receive(reservation: Reservation) -> None:
            if read_body:
                require_json(request.headers.get("Content-Type"))
                received.append(await read_body_of(request, reservation, self._read))

        async with self._pipeline.call(method, rid, metadata, receive=receive, status_of=call_status) as call:
            body = decode_json(received.pop()) if read_body else None  # parsed only once admitted
            timeout = _timeout(request, body or {}, self._timeout_s)
            try:
                return await asyncio.wait_for(handle(call, body, timeout), timeout)
            except asyncio.TimeoutError:
                raise DeadlineError() from None

    async def health(self, request: web.Request) -> web.Response:
        ready = bool(self._ready())
        body = HealthBody(status="SERVING" if ready else "NOT_SERVING")
        return web.json_response(body.model_dump(), status=200 if ready else 503)

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
            return from_error(exc, rid)
        except Exception:  # logged with its traceback by the pipeline
            return error_response(500, f"internal error (request id {rid})", "INTERNAL", rid)


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
    # keepalive_timeout: aiohttp closes a connection still waiting for a request head this long after it opened
    # or after its last response: idle keep-alive connections and slow or stalled headers alike.
    # handler_cancellation: a client that disconnects cancels its handler, as a cancelled gRPC call does, so
    # its Triton work is cancelled too instead of running on for nobody (counted CANCELLED, 499 in the log).
    # shutdown_timeout: the pipeline's drain waited for the calls at work; what is left gets CLOSE_GRACE_S.
    runner = JsonErrorRunner(api.app(), access_log=None, keepalive_timeout=api.header_timeout_s,
                             handler_cancellation=True, shutdown_timeout=CLOSE_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    logger.info("HTTP rerank API on %s://%s:%d (POST /v1/rerank, /v2/rerank; GET /health)",
                "https" if tls else "http", host, bound)
    return runner, bound
