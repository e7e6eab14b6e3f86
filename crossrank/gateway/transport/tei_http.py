"""TEI-compatible HTTP routes: `POST /rerank`, `POST /predict` (pairs), `GET /info`, in the request and
response shapes of Hugging Face Text Embeddings Inference, so a TEI client switches by changing its URL.

Each route runs through `HttpApi.run` (API key, admission, deadline, metrics, access log) and the same core
as every other door. Requests are declared once, as pydantic models: the handler validates with them and the
OpenAPI document is generated from them. Errors are TEI's `{"error": ..., "error_type": ...}` with the
status of `tei.TEI_HTTP`. Beyond TEI: `model` (optional) picks a served model other than the default.
Unknown fields are refused with 422 naming the field, never silently ignored.

`/predict` takes what TEI's takes for pairs: one pair `["text", "text_pair"]` (answered with a list of
`{score, label}`, best first) or a batch of pairs `[["a", "b"], ...]` (a list of such lists, in order). A
single text (`"text"` or `["text"]`) is refused: every crossrank model scores pairs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from crossrank.gateway.backend.base import TokenCut
from crossrank.gateway.core.errors import CrossrankError, InvalidArgumentError
from crossrank.gateway.core.pipeline import Call, request_id
from crossrank.gateway.core.scoring import ClassifyQuery, RerankQuery
from crossrank.gateway.transport import declarations, tei
from crossrank.gateway.transport.declarations import Declaration
from crossrank.gateway.transport.http_errors import retry_headers
from crossrank.gateway.transport.openapi import Operation

# Method labels in metrics and the access log.
RERANK_METHOD, PREDICT_METHOD, INFO_METHOD = "HttpTeiRerank", "HttpTeiPredict", "HttpTeiInfo"

Direction = Literal["Left", "Right", "left", "right"]
_ERROR_STATUSES = {400: "Empty input (Empty)", 401: "Missing or wrong API key", 404: "Unknown model",
                   413: "Too many texts, or a text too long without truncation (Validation)",
                   422: "A malformed body or field (Validation)", 424: "Not a reranker, or the model failed (Backend)",
                   429: "At capacity (Overloaded)", 503: "The models are not ready (Unhealthy)",
                   504: "The deadline passed"}
# A route's work once admitted: (request, its call record, its JSON body or None, its deadline, request id).
Route = Callable[[web.Request, Call, "dict[str, Any] | None", float, str], Awaitable[web.Response]]


class TeiRequest(Declaration):
    model: str = Field("", description="crossrank extension: a served model's name; empty: the default model")
    truncate: bool | None = Field(
        None, description="Cut over-long pairs to the model's max length; false refuses them (413). "
        "null: crossrank's default, true (TEI's `auto_truncate`)")
    truncation_direction: Direction = Field("Right", description="The side over-long pairs lose tokens on")
    raw_scores: bool = Field(False, description="Logits instead of the model's activation (sigmoid, softmax)")
    timeout_s: float | None = Field(None, gt=0, description="crossrank extension: the request's deadline, in "
                                    "seconds (capped by limits.http_timeout_s)")


class RerankRequest(TeiRequest):
    """TEI's `RerankRequest`."""

    query: str = Field(description="The query every text is scored against", examples=["What is Deep Learning?"])
    texts: list[str] = Field(description="The texts to rank", examples=[["Deep Learning is ..."]])
    return_text: bool = Field(False, description="Return each text with its rank")


class PredictRequest(TeiRequest):
    """TEI's `PredictRequest`, for pairs."""

    inputs: list[str] | list[list[str]] = Field(
        description="One pair [text, text_pair], or a batch of pairs [[text, text_pair], ...]",
        examples=[["I like you.", "I love you."]])


class Rank(BaseModel):
    index: int
    text: str | None = None
    score: float


class Prediction(BaseModel):
    score: float
    label: str


class ModelLabels(BaseModel):
    id2label: dict[str, str]
    label2id: dict[str, int]


class InfoResponse(BaseModel):
    """TEI's `Info`."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str
    model_type: dict[Literal["reranker", "classifier"], ModelLabels]
    prompts: dict[str, str] | None = None
    default_prompt_name: str | None = None
    default_prompt: str | None = None
    max_concurrent_requests: int
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int | None
    max_client_batch_size: int
    auto_truncate: bool = Field(description="Over-long pairs are cut when a request does not say (crossrank: "
                                "always true)")
    tokenization_workers: int
    version: str
    sha: str | None = None
    docker_label: str | None = None

    @classmethod
    def of(cls, info: tei.TeiInfo) -> InfoResponse:
        labels = ModelLabels(id2label=info.id2label, label2id={v: int(k) for k, v in info.id2label.items()})
        model_type: dict[Literal["reranker", "classifier"], ModelLabels] = {
            "reranker" if info.model_type == "reranker" else "classifier": labels}
        return cls(model_id=info.model_id, model_dtype=info.model_dtype, model_type=model_type,
                   max_concurrent_requests=info.max_concurrent_requests, max_input_length=info.max_input_length,
                   max_batch_tokens=info.max_batch_tokens, max_batch_requests=info.max_batch_requests,
                   max_client_batch_size=info.max_client_batch_size, auto_truncate=True, tokenization_workers=1,
                   version=info.version)


class ErrorResponse(BaseModel):
    error: str
    error_type: str = Field(description="Unhealthy, Backend, Overloaded, Validation, Tokenizer, Empty "
                            "(or Unauthorized)")


def _pairs(inputs: list[str] | list[list[str]]) -> tuple[list[tuple[str, str]], bool]:
    """TEI's predict inputs as pairs, and whether they came as a batch."""
    if inputs and all(isinstance(i, str) for i in inputs):
        if len(inputs) != 2:
            raise InvalidArgumentError(f"inputs: a pair has 2 texts, got {len(inputs)}; crossrank scores pairs "
                                       "(one text alone is not supported)", "INVALID_FIELD", "inputs")
        return [(str(inputs[0]), str(inputs[1]))], False
    pairs = []
    for i, item in enumerate(inputs):
        if not isinstance(item, list) or len(item) != 2:
            raise InvalidArgumentError(f"inputs[{i}]: a pair has 2 texts; crossrank scores pairs (one text alone "
                                       "is not supported)", "INVALID_FIELD", f"inputs[{i}]")
        pairs.append((item[0], item[1]))
    return pairs, True


def _headers(rid: str, started: float, chars: int, tokens: int, inference_ms: float) -> dict[str, str]:
    """TEI's timing and size headers (milliseconds), and the request id."""
    total = (time.perf_counter() - started) * 1000
    return {"x-request-id": rid, "x-compute-characters": str(chars), "x-compute-tokens": str(tokens),
            "x-total-time": str(round(total)), "x-inference-time": str(round(inference_ms)),
            "x-tokenization-time": "0", "x-queue-time": str(round(max(0.0, total - inference_ms)))}


def error_response(error: CrossrankError, rid: str) -> web.Response:
    status, error_type = tei.tei_error(error)
    return web.json_response({"error": error.message, "error_type": error_type}, status=status,
                             headers={"x-request-id": rid, **retry_headers(status)})


class TeiRoutes:
    def __init__(self, api: Any) -> None:  # an HttpApi (typed loosely: it imports this module)
        self._api = api

    def operations(self) -> list[Operation]:
        errors = {status: (text, ErrorResponse) for status, text in _ERROR_STATUSES.items()}
        tag = "TEI-compatible"
        return [
            Operation("POST", "/rerank", self.rerank, "teiRerank", "Rank texts against a query (TEI's /rerank)", tag,
                      RerankRequest, {200: ("Ranks, best first", list[Rank]), **errors}),
            Operation("POST", "/predict", self.predict, "teiPredict", "Classify pairs (TEI's /predict)", tag,
                      PredictRequest, {200: ("Every label's score, best first: a list for one pair, a list of "
                                             "lists for a batch", list[Prediction] | list[list[Prediction]]),
                                       **errors}),
            Operation("GET", "/info", self.info, "teiInfo", "The served model (TEI's /info)", tag,
                      responses={200: ("The default model, or the one named", InfoResponse),
                                 **{s: errors[s] for s in (401, 404, 503)}},
                      query=(("model", "crossrank extension: a served model other than the default"),)),
        ]

    async def _respond(self, request: web.Request, method: str, handle: Route, read_body: bool = True) -> web.Response:
        rid = request_id(request.headers.get("x-request-id"))

        async def admitted(call: Call, body: dict[str, Any] | None, timeout: float) -> web.Response:
            return await handle(request, call, body, timeout, rid)

        try:
            response: web.Response = await self._api.run(request, method, rid, admitted, read_body)
            return response
        except CrossrankError as exc:
            return error_response(exc, rid)
        except Exception:  # logged with its traceback by the pipeline
            status, error_type = tei.INTERNAL
            return web.json_response({"error": f"internal error (request id {rid})", "error_type": error_type},
                                     status=status, headers={"x-request-id": rid})

    async def rerank(self, request: web.Request) -> web.Response:
        return await self._respond(request, RERANK_METHOD, self._rerank)

    async def predict(self, request: web.Request) -> web.Response:
        return await self._respond(request, PREDICT_METHOD, self._predict)

    async def info(self, request: web.Request) -> web.Response:
        return await self._respond(request, INFO_METHOD, self._info, read_body=False)

    async def _rerank(self, request: web.Request, call: Call, body: dict[str, Any] | None, timeout: float,
                      rid: str) -> web.Response:
        started = time.perf_counter()
        asked: RerankRequest = declarations.validate(RerankRequest, body)
        call.model, call.pairs = asked.model, len(asked.texts)
        if not asked.texts:  # TEI's own check and words, before any other
            raise InvalidArgumentError("`texts` cannot be empty", "EMPTY_DOCUMENTS", "texts")
        outcome = await self._api.core.rerank(RerankQuery(
            model=asked.model, query=asked.query, documents=asked.texts, raw_scores=asked.raw_scores,
            truncate=asked.truncate is not False, timeout=timeout, return_documents=asked.return_text,
            cut=TokenCut(side=tei.truncation_side(asked.truncation_direction))))
        call.model, call.scored_pairs, call.tokens = outcome.model, outcome.usage.pairs, outcome.usage.tokens
        ranks = [Rank(index=r.index, text=r.document, score=r.score).model_dump(exclude_none=True)
                 for r in outcome.results]
        chars = len(asked.query) * len(asked.texts) + sum(len(t) for t in asked.texts)
        return web.json_response(ranks, headers=_headers(rid, started, chars, outcome.usage.tokens,
                                                         outcome.inference_ms))

    async def _predict(self, request: web.Request, call: Call, body: dict[str, Any] | None, timeout: float,
                       rid: str) -> web.Response:
        started = time.perf_counter()
        asked: PredictRequest = declarations.validate(PredictRequest, body)
        call.model = asked.model
        pairs, batch = _pairs(asked.inputs)
        call.pairs = len(pairs)
        if not pairs:
            raise InvalidArgumentError("`inputs` cannot be empty", "EMPTY_INPUTS", "inputs")
        outcome = await self._api.core.classify(ClassifyQuery(
            model=asked.model, pairs=pairs, raw_scores=asked.raw_scores, truncate=asked.truncate is not False,
            timeout=timeout, cut=TokenCut(side=tei.truncation_side(asked.truncation_direction))))
        call.model, call.scored_pairs, call.tokens = outcome.model, outcome.usage.pairs, outcome.usage.tokens
        # TEI lists every label's score, best first
        predictions = [[Prediction(score=score, label=label).model_dump()
                        for label, score in sorted(r.scores, key=lambda s: -s[1])] for r in outcome.results]
        chars = sum(len(a) + len(b) for a, b in pairs)
        headers = _headers(rid, started, chars, outcome.usage.tokens, outcome.inference_ms)
        return web.json_response(predictions if batch else predictions[0], headers=headers)

    async def _info(self, request: web.Request, call: Call, body: dict[str, Any] | None, timeout: float,
                    rid: str) -> web.Response:
        # crossrank extension: ?model=NAME describes another served model than the default
        model = await self._api.core.resolve(request.query.get("model", ""))
        call.model = model.name
        info = tei.TeiInfo.of(model, self._api.core.limits, self._api.max_in_flight)
        return web.json_response(InfoResponse.of(info).model_dump(mode="json"), headers={"x-request-id": rid})

