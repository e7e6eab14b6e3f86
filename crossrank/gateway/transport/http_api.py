"""HTTP rerank endpoint in the Cohere / Jina / vLLM shape, for LangChain, LlamaIndex, Haystack and Open WebUI.

`POST /v1/rerank` and `POST /v2/rerank` take `{model, query, documents, top_n, return_documents, raw_scores,
instruction}` (documents as strings or `{"text": ...}`) and answer `{id, model, results: [{index,
relevance_score, document?, scored_chars?}], usage, meta}`.
It runs every call through the same request pipeline as gRPC (API keys, admission,
metrics, access log) and the same core, so no rule exists twice. The body must be JSON (415 otherwise) and
arrive within the read deadline (408, `http_body`); a body over `limits.max_message_bytes` is 413; the
deadline is the request's (header `X-Request-Timeout` or field `timeout_s`, in seconds) or
`limits.http_timeout_s`, whichever is shorter. A connection must send a whole request head within
`limits.http_header_timeout_s` of opening or of its last response. Every error, the framework's own
included, comes in one JSON shape (`http_errors`). With `tls.*` set it is served over the same TLS (mutual
TLS included) as gRPC, never in plaintext. `GET /health` answers 200 when the models are ready, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiohttp import web

from crossrank.gateway.core.admission import Reservation
from crossrank.gateway.core.errors import CrossrankError, DeadlineError, InvalidArgumentError
from crossrank.gateway.core.pipeline import RequestPipeline, request_id
from crossrank.gateway.core.scoring import CrossEncoderCore, RerankQuery
from crossrank.gateway.transport.http_body import ReadLimits, decode_json, read_body, require_json, require_unicode
from crossrank.gateway.transport.http_errors import (
    JsonErrorRunner,
    call_status,
    error_response,
    from_error,
    json_errors,
)

logger = logging.getLogger(__name__)

METHOD = "HttpRerank"  # the method label of HTTP rerank calls in metrics and the access log


def _field(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise InvalidArgumentError(f"{name} must be a {kind.__name__}", "INVALID_FIELD", name)
    return require_unicode(value, name) if isinstance(value, str) else value


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
        documents.append(require_unicode(text, f"documents[{i}]"))
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
    if isinstance(asked, bool) or not isinstance(asked, (int, float)) or not float(asked) > 0:
        raise InvalidArgumentError("the timeout must be a positive number of seconds", "INVALID_FIELD",
                                   "timeout_s")
    return min(float(asked), default)


class HttpApi:
    def __init__(self, core: CrossEncoderCore, pipeline: RequestPipeline, ready: Any,
                 max_body_bytes: int = 32 * 1024 * 1024, timeout_s: float = 60.0, read_timeout_s: float = 10.0,
                 min_read_bytes_per_s: float = 1024 * 1024, header_timeout_s: float = 75.0) -> None:
        self._core = core
        self._pipeline = pipeline
        self._ready = ready  # callable returning True when health is SERVING
        self._read = ReadLimits(max_body_bytes, read_timeout_s, min_read_bytes_per_s)
        self._timeout_s = timeout_s
        self.header_timeout_s = header_timeout_s

    def app(self) -> web.Application:
        application = web.Application(client_max_size=self._read.max_bytes, middlewares=[json_errors])
        application.router.add_post("/v1/rerank", self.rerank)
        application.router.add_post("/v2/rerank", self.rerank)
        application.router.add_get("/health", self.health)
        return application

    async def health(self, request: web.Request) -> web.Response:
        ready = bool(self._ready())
        return web.json_response({"status": "SERVING" if ready else "NOT_SERVING"}, status=200 if ready else 503)

    async def rerank(self, request: web.Request) -> web.Response:
        rid = request_id(request.headers.get("x-request-id"))
        metadata = [("authorization", request.headers.get("Authorization", ""))]
        received: list[bytes] = []

        async def receive(reservation: Reservation) -> None:
            require_json(request.headers.get("Content-Type"))
            received.append(await read_body(request, reservation, self._read))

        try:
            async with self._pipeline.call(METHOD, rid, metadata, receive=receive, status_of=call_status) as call:
                body = decode_json(received.pop())  # parsed only once admitted, as gRPC messages are
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
            }, headers={"x-request-id": rid})
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
    runner = JsonErrorRunner(api.app(), access_log=None, keepalive_timeout=api.header_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    logger.info("HTTP rerank API on %s://%s:%d (POST /v1/rerank, /v2/rerank; GET /health)",
                "https" if tls else "http", host, bound)
    return runner, bound
