"""asyncio client for the crossrank gRPC API: the same methods as `CrossEncoderClient`, as coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from crossrank_client import _convert, types
from crossrank_client._options import CHANNEL_OPTIONS, RetryPolicy, metadata
from crossrank_client.errors import CrossrankClientError
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc

T = TypeVar("T")


class AsyncCrossEncoderClient:
    """`await AsyncCrossEncoderClient("localhost:50051").rerank(query, documents, top_n=3)`.

    Same options as `CrossEncoderClient`: `credentials`, `api_key`, `retry`.
    """

    def __init__(self, target: str, *, timeout: float | None = 30.0,
                 credentials: grpc.ChannelCredentials | None = None, api_key: str | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self._timeout = timeout
        self._metadata = metadata(api_key)
        self._retry = retry or RetryPolicy()
        self._channel = (grpc.aio.secure_channel(target, credentials, CHANNEL_OPTIONS) if credentials
                         else grpc.aio.insecure_channel(target, CHANNEL_OPTIONS))
        self._stub = pb_grpc.CrossEncoderServiceStub(self._channel)

    async def _call(self, method: Callable[..., Awaitable[T]], request: Any, timeout: float | None) -> T:
        attempt = 0
        while True:
            try:
                return await method(request, timeout=timeout or self._timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                if not self._retry.should_retry(exc, attempt):
                    raise CrossrankClientError.from_rpc_error(exc) from None
                await asyncio.sleep(self._retry.backoff(attempt))
                attempt += 1

    async def rerank(self, query: str, documents: Sequence[str], *, model: str = "", top_n: int = 0,
                     return_documents: bool = False, raw_scores: bool = False, truncate: bool | None = None,
                     chunk_long_documents: bool = False, max_chunks_per_document: int = 0, instruction: str = "",
                     timeout: float | None = None) -> types.RerankResponse:
        request = _convert.rerank_request(query, documents, model, top_n, return_documents, raw_scores, truncate,
                                          chunk_long_documents, max_chunks_per_document, instruction)
        return _convert.rerank_response(await self._call(self._stub.Rerank, request, timeout))

    async def classify(self, pairs: Iterable[tuple[str, str]], *, model: str = "", raw_scores: bool = False,
                       truncate: bool | None = None, timeout: float | None = None,
                      instruction: str = "") -> types.ClassifyResponse:
        request = _convert.classify_request(pairs, model, raw_scores, truncate, instruction)
        return _convert.classify_response(await self._call(self._stub.Classify, request, timeout))

    async def list_models(self, *, timeout: float | None = None) -> list[types.ModelInfo]:
        return _convert.models_response(await self._call(self._stub.ListModels, pb.ListModelsRequest(), timeout))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncCrossEncoderClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
