"""The request of `POST /v1/rerank` and `/v2/rerank` (Cohere's shape, which Jina, vLLM and Infinity share),
declared once: http_api.py validates with it and the OpenAPI document is generated from it.

Honoured: Cohere's `model`, `query`, `documents` (strings, or `{"text": ...}` objects as Jina sends),
`top_n`, `return_documents`, `max_tokens_per_doc` (v2: each document cut to that many tokens before
scoring), `max_chunks_per_doc` (v1: long documents scored by their best chunk, at most that many chunks),
and crossrank's `raw_scores`, `instruction` and `timeout_s`. A field another rerank API defines that
crossrank does not honour is refused with 400 naming it and saying what to send instead (`FOREIGN_FIELDS`);
any other unknown field is refused too. Nothing is silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crossrank.gateway.backend.base import TokenCut
from crossrank.gateway.core.errors import InvalidArgumentError
from crossrank.gateway.core.scoring import RerankQuery
from crossrank.gateway.transport.declarations import Declaration

_TEI = "a field of TEI's rerank request; send TEI's request to POST /rerank"
FOREIGN_FIELDS = {
    "rank_fields": "Cohere v1 ranks chosen fields of object documents; send each document's text to rank "
                   "(a string or {\"text\": ...})",
    "top_k": "crossrank's (and Cohere's) name for it is top_n",
    "return_input": "crossrank's (and Cohere's) name for it is return_documents",
    "truncation": "crossrank always truncates over-long pairs to the model's max length; max_tokens_per_doc "
                  "cuts documents shorter",
    "truncate_prompt_tokens": "max_tokens_per_doc cuts each document to that many tokens",
    "priority": "crossrank serves requests in arrival order",
    "texts": _TEI, "return_text": _TEI, "truncate": _TEI, "truncation_direction": _TEI,
}


class DocumentObject(BaseModel):
    """A document as an object: its `text` is ranked; other fields are the caller's and left alone."""

    model_config = ConfigDict(extra="allow", strict=True)

    text: str


class CohereRerankRequest(Declaration):
    """`POST /v1/rerank`, `POST /v2/rerank`."""

    model: str | None = Field(None, description="A served model; empty or absent: the server's default")
    query: str = Field("", description="The query every document is scored against",
                       examples=["What is the capital of France?"])
    documents: list[str | DocumentObject] = Field(
        description="The documents to rank: strings, or objects whose `text` is ranked",
        examples=[["Paris is the capital of France.", "Berlin is in Germany."]])
    top_n: int | None = Field(None, description="Return the best N; 0 or absent: all (negative: refused)")
    return_documents: bool | None = Field(None, description="Return each document's text with its result")
    max_tokens_per_doc: int | None = Field(None, ge=1, description="Cut each document to this many tokens "
                                           "before scoring (Cohere v2); absent: only the model's max length")
    max_chunks_per_doc: int | None = Field(None, ge=1, description="Score long documents by their best chunk, "
                                           "at most this many chunks each (Cohere v1); absent: the start only")
    raw_scores: bool | None = Field(None, description="crossrank: logits instead of the model's activation")
    instruction: str | None = Field(None, description="crossrank: the task instruction, for models with an "
                                    "instruction slot")
    timeout_s: float | None = Field(None, gt=0, description="crossrank: the request's deadline in seconds "
                                    "(capped by limits.http_timeout_s; header X-Request-Timeout too)")

    def query_for(self, timeout: float) -> RerankQuery:
        if self.max_tokens_per_doc is not None and self.max_chunks_per_doc is not None:
            raise InvalidArgumentError("max_tokens_per_doc cuts documents short, max_chunks_per_doc reads them "
                                       "whole: send one of them", "INVALID_FIELD", "max_chunks_per_doc")
        return RerankQuery(
            model=self.model or "", query=self.query,
            documents=[d if isinstance(d, str) else d.text for d in self.documents],
            top_n=self.top_n or 0, return_documents=bool(self.return_documents), raw_scores=bool(self.raw_scores),
            timeout=timeout, instruction=self.instruction or "",
            chunk_long_documents=self.max_chunks_per_doc is not None,
            max_chunks_per_document=self.max_chunks_per_doc or 0,
            cut=TokenCut(max_document_tokens=self.max_tokens_per_doc or 0))


class DocumentText(BaseModel):
    text: str


class CohereResult(BaseModel):
    index: int = Field(description="The document's position in the request")
    relevance_score: float
    document: DocumentText | None = Field(None, description="With return_documents")
    scored_chars: int | None = Field(None, description="crossrank: set when the score saw only the document's "
                                     "first this many characters")


class CohereUsage(BaseModel):
    pairs: int
    total_tokens: int
    rescored: int = Field(0, description="crossrank: documents re-scored with the fp32 encoder for the exact "
                          "head (0 for a model served without it)")


class BilledUnits(BaseModel):
    search_units: int


class CohereMeta(BaseModel):
    billed_units: BilledUnits


class CohereRerankResponse(BaseModel):
    """The answer of `/v1/rerank` and `/v2/rerank`: results best first."""

    id: str = Field(description="The request id (header x-request-id)")
    model: str
    results: list[CohereResult]
    usage: CohereUsage
    meta: CohereMeta


class FieldViolationBody(BaseModel):
    field: str
    description: str


class ApiError(BaseModel):
    """crossrank's error body on its own routes."""

    message: str
    reason: str = Field(description="Machine-readable, for example INVALID_FIELD, MODEL_NOT_FOUND, OVERLOADED")
    request_id: str
    field_violations: list[FieldViolationBody] = Field(default_factory=list)
