"""Typed Python client for crossrank, the cross-encoder (reranker and pair classifier) server."""

from crossrank_client._options import RetryPolicy, tls_credentials
from crossrank_client.aio import AsyncCrossEncoderClient
from crossrank_client.client import CrossEncoderClient
from crossrank_client.errors import CrossrankClientError, FieldViolation
from crossrank_client.types import (
    ClassifyResponse,
    ClassifyResult,
    LabelScore,
    ModelInfo,
    RerankResponse,
    RerankResult,
    Timing,
    Usage,
)

__all__ = [
    "AsyncCrossEncoderClient",
    "ClassifyResponse",
    "ClassifyResult",
    "CrossEncoderClient",
    "CrossrankClientError",
    "FieldViolation",
    "LabelScore",
    "ModelInfo",
    "RerankResponse",
    "RerankResult",
    "RetryPolicy",
    "Timing",
    "Usage",
    "tls_credentials",
]
