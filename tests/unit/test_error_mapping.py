"""The core's error codes: transport-free, and each mapped once by every transport."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from crossrank.gateway.core import errors
from crossrank.gateway.core.errors import CrossrankError, ErrorCode
from crossrank.gateway.transport.grpc_interceptor import GRPC_STATUS, to_status
from crossrank.gateway.transport.http_errors import HTTP_STATUS

CORE = Path(errors.__file__).resolve().parent


def test_every_code_has_a_grpc_status_and_an_http_status() -> None:
    assert set(GRPC_STATUS) == set(ErrorCode)
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert all(400 <= status < 600 for status in HTTP_STATUS.values())


def test_the_core_imports_no_transport() -> None:
    imported = set()
    for module in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"grpc", "grpc_status", "aiohttp", "google"}


@pytest.mark.parametrize(("kind", "grpc_code", "http", "label"), [
    (errors.InvalidArgumentError("bad", "INVALID_FIELD", "top_n"), grpc.StatusCode.INVALID_ARGUMENT, 400,
     "INVALID_ARGUMENT"),
    (errors.ModelNotFoundError("m", []), grpc.StatusCode.NOT_FOUND, 404, "NOT_FOUND"),
    (errors.UnauthenticatedError(), grpc.StatusCode.UNAUTHENTICATED, 401, "UNAUTHENTICATED"),
    (errors.OverloadedError("full"), grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "RESOURCE_EXHAUSTED"),
    # gRPC has no "too large" of its own: RESOURCE_EXHAUSTED, as its own refusal of a large message says.
    (errors.MessageTooLargeError(10), grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "RESOURCE_EXHAUSTED"),
    (errors.BackendUnavailableError(), grpc.StatusCode.UNAVAILABLE, 503, "UNAVAILABLE"),
    (errors.DeadlineError(), grpc.StatusCode.DEADLINE_EXCEEDED, 504, "DEADLINE_EXCEEDED"),
    (errors.BackendError(), grpc.StatusCode.INTERNAL, 500, "INTERNAL"),
    (errors.ReadTimeoutError("the body"), grpc.StatusCode.DEADLINE_EXCEEDED, 408, "DEADLINE_EXCEEDED"),
    (errors.ClientClosedError(), grpc.StatusCode.CANCELLED, 499, "CANCELLED"),
    (errors.UnsupportedMediaTypeError("text/plain"), grpc.StatusCode.INVALID_ARGUMENT, 415, "INVALID_ARGUMENT"),
])
def test_each_kind_maps_to_the_status_each_transport_documents(kind: CrossrankError, grpc_code: grpc.StatusCode,
                                                               http: int, label: str) -> None:
    assert to_status(kind, "rid").code == grpc_code.value[0]
    assert HTTP_STATUS[kind.code] == http
    assert kind.code.label == label  # what metrics and the access log say, on either transport
