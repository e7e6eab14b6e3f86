"""Blocking client for the crossrank gRPC API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType

import grpc

from crossrank_client import _convert, types
from crossrank_client.errors import CrossrankClientError
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc

# Large rerank requests (1,000 long documents) exceed gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]


class CrossEncoderClient:
    """`CrossEncoderClient("localhost:50051").rerank(query, documents, top_n=3)`."""

    def __init__(self, target: str, *, timeout: float | None = 30.0,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self._timeout = timeout
        self._channel = (grpc.secure_channel(target, credentials, CHANNEL_OPTIONS) if credentials
                         else grpc.insecure_channel(target, CHANNEL_OPTIONS))
        self._stub = pb_grpc.CrossEncoderServiceStub(self._channel)

    def rerank(self, query: str, documents: Sequence[str], *, model: str = "", top_n: int = 0,
               return_documents: bool = False, raw_scores: bool = False, truncate: bool | None = None,
               timeout: float | None = None) -> types.RerankResponse:
        """Ranks `documents` against `query`, best first. `truncate=False` refuses over-long pairs."""
        request = _convert.rerank_request(query, documents, model, top_n, return_documents, raw_scores, truncate)
        try:
            response = self._stub.Rerank(request, timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise CrossrankClientError.from_rpc_error(exc) from None
        return _convert.rerank_response(response)

    def classify(self, pairs: Iterable[tuple[str, str]], *, model: str = "", raw_scores: bool = False,
                 truncate: bool | None = None, timeout: float | None = None) -> types.ClassifyResponse:
        """Scores each (text, text_pair); one result per pair, in order."""
        request = _convert.classify_request(pairs, model, raw_scores, truncate)
        try:
            response = self._stub.Classify(request, timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise CrossrankClientError.from_rpc_error(exc) from None
        return _convert.classify_response(response)

    def list_models(self, *, timeout: float | None = None) -> list[types.ModelInfo]:
        try:
            response = self._stub.ListModels(pb.ListModelsRequest(), timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise CrossrankClientError.from_rpc_error(exc) from None
        return _convert.models_response(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CrossEncoderClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
