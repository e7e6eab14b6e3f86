"""asyncio client for the crossrank gRPC API: the same methods as `CrossEncoderClient`, as coroutines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType

import grpc
import grpc.aio

from crossrank_client import _convert, types
from crossrank_client.client import CHANNEL_OPTIONS
from crossrank_client.errors import CrossrankClientError
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc


class AsyncCrossEncoderClient:
    """`await AsyncCrossEncoderClient("localhost:50051").rerank(query, documents, top_n=3)`."""

    def __init__(self, target: str, *, timeout: float | None = 30.0,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self._timeout = timeout
        self._channel = (grpc.aio.secure_channel(target, credentials, CHANNEL_OPTIONS) if credentials
                         else grpc.aio.insecure_channel(target, CHANNEL_OPTIONS))
        self._stub = pb_grpc.CrossEncoderServiceStub(self._channel)

    async def rerank(self, query: str, documents: Sequence[str], *, model: str = "", top_n: int = 0,
                     return_documents: bool = False, raw_scores: bool = False, truncate: bool | None = None,
                     timeout: float | None = None) -> types.RerankResponse:
        request = _convert.rerank_request(query, documents, model, top_n, return_documents, raw_scores, truncate)
        try:
            response = await self._stub.Rerank(request, timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise CrossrankClientError.from_rpc_error(exc) from None
        return _convert.rerank_response(response)

    async def classify(self, pairs: Iterable[tuple[str, str]], *, model: str = "", raw_scores: bool = False,
                       truncate: bool | None = None, timeout: float | None = None) -> types.ClassifyResponse:
        request = _convert.classify_request(pairs, model, raw_scores, truncate)
        try:
            response = await self._stub.Classify(request, timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise CrossrankClientError.from_rpc_error(exc) from None
        return _convert.classify_response(response)

    async def list_models(self, *, timeout: float | None = None) -> list[types.ModelInfo]:
        try:
            response = await self._stub.ListModels(pb.ListModelsRequest(), timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise CrossrankClientError.from_rpc_error(exc) from None
        return _convert.models_response(response)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncCrossEncoderClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
