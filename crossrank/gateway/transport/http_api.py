"""HTTP rerank endpoint in the Cohere / Jina / vLLM shape, for LangChain, LlamaIndex, Haystack and Open WebUI.

`POST /v1/rerank` and `POST /v2/rerank` take `{model, query, documents, top_n, return_documents}` (documents
as strings or `{"text": ...}`) and answer `{id, model, results: [{index, relevance_score, document?}],
usage, meta}`. It calls the same core as gRPC, behind the same API keys and the same request limiter, so
no scoring logic exists twice. `GET /health` answers 200 when the models are ready, 503 otherwise.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import grpc
from aiohttp import web

from crossrank.gateway.core.admission import ApiKeys, Limiter
from crossrank.gateway.core.errors import CrossrankError, InvalidArgumentError
from crossrank.gateway.core.scoring import CrossEncoderCore, RerankQuery

logger = logging.getLogger(__name__)
access_log = logging.getLogger("crossrank.access")

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_MAX_BODY_BYTES = 32 * 1024 * 1024


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


class HttpApi:
    def __init__(self, core: CrossEncoderCore, api_keys: ApiKeys, limiter: Limiter | None,
                 ready: Any) -> None:
        self._core = core
        self._api_keys = api_keys
        self._limiter = limiter
        self._ready = ready  # callable returning True when health is SERVING

    def app(self) -> web.Application:
        application = web.Application(client_max_size=_MAX_BODY_BYTES)
        application.router.add_post("/v1/rerank", self.rerank)
        application.router.add_post("/v2/rerank", self.rerank)
        application.router.add_get("/health", self.health)
        return application

    async def health(self, request: web.Request) -> web.Response:
        ready = bool(self._ready())
        return web.json_response({"status": "SERVING" if ready else "NOT_SERVING"}, status=200 if ready else 503)

    async def rerank(self, request: web.Request) -> web.Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        started = time.perf_counter()
        status, model, pairs = 200, "-", 0
        try:
            self._api_keys.check([("authorization", request.headers.get("Authorization", ""))])
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise InvalidArgumentError("the body is not valid JSON", "MALFORMED_REQUEST") from None
            if not isinstance(body, dict):
                raise InvalidArgumentError("the body must be a JSON object", "MALFORMED_REQUEST")
            query = RerankQuery(
                model=_field(body, "model", str, ""), query=_field(body, "query", str, ""),
                documents=_documents(body), top_n=_field(body, "top_n", int, 0),
                return_documents=_field(body, "return_documents", bool, False),
                raw_scores=_field(body, "raw_scores", bool, False))
            pairs = len(query.documents)
            if self._limiter is None:
                outcome = await self._core.rerank(query)
            else:
                async with self._limiter.admit():
                    outcome = await self._core.rerank(query)
            model = outcome.model
            results = []
            for r in outcome.results:
                item: dict[str, Any] = {"index": r.index, "relevance_score": r.score}
                if r.document is not None:
                    item["document"] = {"text": r.document}
                results.append(item)
            return web.json_response({
                "id": request_id, "model": outcome.model, "results": results,
                "usage": {"pairs": outcome.usage.pairs, "total_tokens": outcome.usage.tokens},
                "meta": {"billed_units": {"search_units": 1}},
            }, headers={"x-request-id": request_id})
        except CrossrankError as exc:
            status = _HTTP_STATUS.get(exc.code, 500)
            return web.json_response({
                "message": exc.message, "reason": exc.reason, "request_id": request_id,
                "field_violations": [{"field": v.field, "description": v.description} for v in exc.violations],
            }, status=status, headers={"x-request-id": request_id})
        except Exception:
            status = 500
            logger.exception("HTTP request %s failed", request_id)
            return web.json_response({"message": f"internal error (request id {request_id})", "reason": "INTERNAL",
                                      "request_id": request_id}, status=500, headers={"x-request-id": request_id})
        finally:
            access_log.info("request_id=%s method=HTTP-Rerank model=%s pairs=%d status=%d latency_ms=%.1f",
                            request_id, model, pairs, status, (time.perf_counter() - started) * 1000)


async def start(api: HttpApi, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    logger.info("HTTP rerank API on http://%s:%d (POST /v1/rerank, /v2/rerank; GET /health)", host, bound)
    return runner, bound
