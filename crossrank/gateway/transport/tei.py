"""What crossrank says in Hugging Face Text Embeddings Inference (TEI) terms, for both TEI doors (HTTP in
`tei_http.py`, gRPC in `tei_grpc.py`): the model's description in TEI's `/info` vocabulary, the truncation
direction, and the one table from the core's error codes to TEI's error types and statuses.

TEI serves one model per server; crossrank serves several. A TEI request scores with the server's default
model unless it names another in the crossrank extension field `model` (HTTP) or metadata `x-crossrank-model`
(gRPC).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from crossrank import __version__
from crossrank.gateway.core.errors import CrossrankError, ErrorCode, InvalidArgumentError
from crossrank.gateway.core.validation import Limits
from crossrank.model_info import ModelInfo, Task

# export's precision names as TEI spells dtypes
_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8"}


def truncation_side(direction: str) -> str:
    """TEI's `Left` / `Right` (its OpenAPI document spells them lower case too) as the tokenizer's side."""
    side = direction.lower()
    if side not in ("left", "right"):
        raise InvalidArgumentError(f"truncation_direction must be Left or Right, got {direction!r}",
                                   "INVALID_TRUNCATION", "truncation_direction")
    return side


@dataclass(frozen=True)
class TeiInfo:
    """TEI's `Info` for one served model."""

    model_id: str
    model_dtype: str
    model_type: str  # "reranker" (one logit) or "classifier"
    id2label: dict[str, str]
    max_concurrent_requests: int
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int
    max_client_batch_size: int
    version: str = __version__

    @classmethod
    def of(cls, model: ModelInfo, limits: Limits, max_concurrent_requests: int) -> TeiInfo:
        return cls(
            model_id=model.name, model_dtype=_DTYPES.get(model.precision, model.precision),
            model_type="reranker" if model.task is Task.RERANK else "classifier",
            id2label={str(i): label for i, label in enumerate(model.labels)},
            max_concurrent_requests=max_concurrent_requests, max_input_length=model.max_length,
            max_batch_tokens=model.max_batch_size * model.max_length, max_batch_requests=model.max_batch_size,
            max_client_batch_size=limits.max_documents)


# The one place where the core's errors become TEI's (HTTP status, error_type). TEI's own types: Unhealthy
# 503, Backend 424, Overloaded 429, Tokenizer 422, Validation 413, Empty 400. What TEI has no type for keeps
# the closest type with the status HTTP gives it (401, 404, 408, 415, 422 for a malformed body as TEI's JSON
# parser answers, 499, 504); a client reads the status first.
TEI_HTTP: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.INVALID_ARGUMENT: (422, "Validation"), ErrorCode.NOT_FOUND: (404, "Validation"),
    ErrorCode.UNAUTHENTICATED: (401, "Unauthorized"), ErrorCode.RESOURCE_EXHAUSTED: (429, "Overloaded"),
    ErrorCode.MESSAGE_TOO_LARGE: (413, "Validation"), ErrorCode.UNAVAILABLE: (503, "Unhealthy"),
    ErrorCode.DEADLINE_EXCEEDED: (504, "Backend"), ErrorCode.CANCELLED: (499, "Backend"),
    ErrorCode.INTERNAL: (424, "Backend"),  # TEI: inference failed
    ErrorCode.READ_TIMEOUT: (408, "Validation"), ErrorCode.UNSUPPORTED_MEDIA_TYPE: (415, "Validation"),
}
# Bad input TEI tells apart, by the core's reason.
TEI_HTTP_BY_REASON: dict[str, tuple[int, str]] = {
    **dict.fromkeys(("EMPTY_DOCUMENTS", "EMPTY_INPUTS", "EMPTY_QUERY", "EMPTY_DOCUMENT", "EMPTY_TEXT"),
                    (400, "Empty")),
    **dict.fromkeys(("TOO_MANY_INPUTS", "INPUT_TOO_LONG", "TEXT_TOO_LONG"), (413, "Validation")),
    "WRONG_TASK": (424, "Backend"),  # TEI: "model is not a re-ranker model"
}
INTERNAL = (500, "Backend")  # not a CrossrankError: our bug


def tei_error(error: CrossrankError) -> tuple[int, str]:
    """The HTTP status and TEI error_type of `error`."""
    return TEI_HTTP_BY_REASON.get(error.reason) or TEI_HTTP[error.code]


# TEI's error types as TEI's gRPC server answers them; what the HTTP table gives a status TEI has no type
# for keeps that status's gRPC meaning.
_GRPC_BY_TYPE = {
    "Unhealthy": grpc.StatusCode.UNAVAILABLE, "Backend": grpc.StatusCode.FAILED_PRECONDITION,
    "Overloaded": grpc.StatusCode.RESOURCE_EXHAUSTED, "Validation": grpc.StatusCode.INVALID_ARGUMENT,
    "Tokenizer": grpc.StatusCode.FAILED_PRECONDITION, "Empty": grpc.StatusCode.INVALID_ARGUMENT,
    "Unauthorized": grpc.StatusCode.UNAUTHENTICATED,
}
_GRPC_BY_STATUS = {404: grpc.StatusCode.NOT_FOUND, 408: grpc.StatusCode.DEADLINE_EXCEEDED,
                   499: grpc.StatusCode.CANCELLED, 504: grpc.StatusCode.DEADLINE_EXCEEDED}


def tei_grpc_code(error: CrossrankError) -> grpc.StatusCode:
    """The gRPC code of `error` on the tei.v1 services."""
    if error.code is ErrorCode.INTERNAL and error.reason == "INTERNAL":
        return grpc.StatusCode.INTERNAL  # the backend's fault or ours: never FAILED_PRECONDITION's "fix and retry"
    status, error_type = tei_error(error)
    return _GRPC_BY_STATUS.get(status) or _GRPC_BY_TYPE[error_type]
