"""HTTP rerank endpoint in the Cohere / Jina / vLLM shape, for LangChain, LlamaIndex, Haystack and Open WebUI.

`POST /v1/rerank` and `POST /v2/rerank` take `{model, query, documents, top_n, return_documents, raw_scores,
instruction}` (documents as strings or `{"text": ...}`) and answer `{id, model, results: [{index,
relevance_score, document?, scored_chars?}], usage, meta}`.
It runs every call through the same request pipeline as gRPC (API keys, admission,
metrics, access log) and the same core, so no rule exists twice. A body over `limits.max_message_bytes` is
413; the deadline is the request's (header `X-Request-Timeout` or field `timeout_s`, in seconds) or
`limits.http_timeout_s`, whichever is shorter. With `tls.*` set it is served over the same TLS (mutual TLS
included) as gRPC, never in plaintext. `GET /health` answers 200 when the models are ready, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any

from aiohttp import web

from crossrank.gateway.core.errors import (
    CrossrankError,
    DeadlineError,
    ErrorCode,
    InvalidArgumentError,
    MessageTooLargeError,
)
from crossrank.gateway.core.pipeline import RequestPipeline, request_id
from crossrank.gateway.core.scoring import CrossEncoderCore, RerankQuery

logger = logging.getLogger(__name__)

# The one place where the core's error codes become HTTP statuses (499: the client closed the request).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400, ErrorCode.UNAUTHENTICATED: 401, ErrorCode.NOT_FOUND: 404,
    ErrorCode.MESSAGE_TOO_LARGE: 413, ErrorCode.RESOURCE_EXHAUSTED: 429, ErrorCode.CANCELLED: 499,
    ErrorCode.INTERNAL: 500, ErrorCode.UNAVAILABLE: 503, ErrorCode.DEADLINE_EXCEEDED: 504,
}
METHOD = "HttpRerank"  # the method label of HTTP rerank calls in metrics and the access log


def _field(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise InvalidArgumentError(f"{name} must be a {kind.__name__}", "INVALID_FIELD", name)
    return value


def _documents(body: dict[str, Any]) -> list[str]:
    raw = body.get("documents")
    if not isinstance(raw, list):
        raise InvalidArgumentError("documents must be a list of strings or {\"text\": ...} objects",
                                   "INVALID_FIELD", "documents")
    documents = []
    for i, item in enumerate(raw):
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise InvalidArgumentError(f"documents[{i}] must be a string or {{\"text\": string}}",
                                       "INVALID_FIELD", f"documents[{i}]")
        documents.append(text)
    return documents


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
                 max_body_bytes: int = 32 * 1024 * 1024, timeout_s: float = 60.0) -> None:
        self._core = core
        self._pipeline = pipeline
        self._ready = ready  # callable returning True when health is SERVING
        self._max_body_bytes = max_body_bytes
        self._timeout_s = timeout_s

    def app(self) -> web.Application:
        # aiohttp enforces the cap while reading; `_body` turns its refusal into the documented 413.
        application = web.Application(client_max_size=self._max_body_bytes)
        application.router.add_post("/v1/rerank", self.rerank)
        application.router.add_post("/v2/rerank", self.rerank)
        application.router.add_get("/health", self.health)
        return application

    async def health(self, request: web.Request) -> web.Response:
        ready = bool(self._ready())
        return web.json_response({"status": "SERVING" if ready else "NOT_SERVING"}, status=200 if ready else 503)

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

    async def rerank(self, request: web.Request) -> web.Response:
        rid = request_id(request.headers.get("x-request-id"))
        headers = {"x-request-id": rid}
        metadata = [("authorization", request.headers.get("Authorization", ""))]
        try:
            # Admitted by the body's declared size (without one, by the most a body may hold) before reading it.
            size = min(request.content_length or self._max_body_bytes, self._max_body_bytes)
            async with self._pipeline.call(METHOD, rid, metadata, size=size) as call:
                body = await self._body(request)
                call.model = _field(body, "model", str, "")
                timeout = _timeout(request, body, self._timeout_s)
                query = RerankQuery(
                    model=call.model, query=_field(body, "query", str, ""),
                    documents=_documents(body), top_n=_field(body, "top_n", int, 0),
                    return_documents=_field(body, "return_documents", bool, False),
                    raw_scores=_field(body, "raw_scores", bool, False), timeout=timeout,
                    instruction=_field(body, "instruction", str, ""))
                call.pairs = len(query.documents)
                try:
                    outcome = await asyncio.wait_for(self._core.rerank(query), timeout)
                except asyncio.TimeoutError:
                    raise DeadlineError() from None
                call.model = outcome.model
                call.scored_pairs, call.tokens = outcome.usage.pairs, outcome.usage.tokens
            results = []
            for r in outcome.results:
                item: dict[str, Any] = {"index": r.index, "relevance_score": r.score}
                if r.document is not None:
                    item["document"] = {"text": r.document}
                if r.scored_chars is not None:
                    item["scored_chars"] = r.scored_chars
                results.append(item)
            return web.json_response({
                "id": rid, "model": outcome.model, "results": results,
                "usage": {"pairs": outcome.usage.pairs, "total_tokens": outcome.usage.tokens},
                "meta": {"billed_units": {"search_units": 1}},
            }, headers=headers)
        except CrossrankError as exc:
            return web.json_response({
                "message": exc.message, "reason": exc.reason, "request_id": rid,
                "field_violations": [{"field": v.field, "description": v.description} for v in exc.violations],
            }, status=HTTP_STATUS[exc.code], headers=headers)
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
