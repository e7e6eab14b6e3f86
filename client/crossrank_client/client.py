"""Blocking client for the crossrank gRPC API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TypeVar

import grpc

from crossrank_client import _convert, types
from crossrank_client._options import CHANNEL_OPTIONS, RetryPolicy, metadata
from crossrank_client.errors import CrossrankClientError
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc

T = TypeVar("T")


class CrossEncoderClient:
    """`CrossEncoderClient("localhost:50051").rerank(query, documents, top_n=3)`.

    `credentials` (see `tls_credentials`) switches to TLS; `api_key` sends `authorization: Bearer <key>`;
    `retry` retries UNAVAILABLE with backoff (`RetryPolicy(attempts=1)` turns retries off).
    """

    def __init__(self, target: str, *, timeout: float | None = 30.0,
                 credentials: grpc.ChannelCredentials | None = None, api_key: str | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self._timeout = timeout
        self._metadata = metadata(api_key)
        self._retry = retry or RetryPolicy()
        self._channel = (grpc.secure_channel(target, credentials, CHANNEL_OPTIONS) if credentials
                         else grpc.insecure_channel(target, CHANNEL_OPTIONS))
        self._stub = pb_grpc.CrossEncoderServiceStub(self._channel)

    def _call(self, method: Callable[..., T], request: object, timeout: float | None) -> T:
        attempt = 0
        while True:
            try:
                return method(request, timeout=timeout or self._timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                if not self._retry.should_retry(exc, attempt):
                    raise CrossrankClientError.from_rpc_error(exc) from None
                time.sleep(self._retry.backoff(attempt))
                attempt += 1

    def rerank(self, query: str, documents: Sequence[str], *, model: str = "", top_n: int = 0,
               return_documents: bool = False, raw_scores: bool = False, truncate: bool | None = None,
               chunk_long_documents: bool = False, max_chunks_per_document: int = 0, instruction: str = "",
               timeout: float | None = None) -> types.RerankResponse:
        """Ranks `documents` against `query`, best first. `truncate=False` refuses over-long pairs;
        `chunk_long_documents=True` scores long documents by their best chunk instead of their start;
        `instruction` replaces the model's own task instruction (models with an instruction slot only)."""
        request = _convert.rerank_request(query, documents, model, top_n, return_documents, raw_scores, truncate,
                                          chunk_long_documents, max_chunks_per_document, instruction)
        return _convert.rerank_response(self._call(self._stub.Rerank, request, timeout))

    def classify(self, pairs: Iterable[tuple[str, str]], *, model: str = "", raw_scores: bool = False,
                 truncate: bool | None = None, timeout: float | None = None,
                instruction: str = "") -> types.ClassifyResponse:
        """Scores each (text, text_pair); one result per pair, in order."""
        request = _convert.classify_request(pairs, model, raw_scores, truncate, instruction)
        return _convert.classify_response(self._call(self._stub.Classify, request, timeout))

    def list_models(self, *, timeout: float | None = None) -> list[types.ModelInfo]:
        return _convert.models_response(self._call(self._stub.ListModels, pb.ListModelsRequest(), timeout))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CrossEncoderClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
