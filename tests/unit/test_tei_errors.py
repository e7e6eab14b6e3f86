"""TEI's error table covers every core error code, and TEI's own distinctions hold."""

from __future__ import annotations

import grpc
import pytest

from crossrank.gateway.core.errors import (
    BackendError,
    CrossrankError,
    ErrorCode,
    InvalidArgumentError,
    OverloadedError,
    WrongTaskError,
)
from crossrank.gateway.transport.tei import TEI_HTTP, tei_error, tei_grpc_code


def test_every_code_has_a_tei_status() -> None:
    assert set(TEI_HTTP) == set(ErrorCode)
    for code in ErrorCode:
        status, _ = TEI_HTTP[code]
        assert 400 <= status < 600
        assert isinstance(tei_grpc_code(CrossrankError("x", "R", (), code)), grpc.StatusCode)


@pytest.mark.parametrize(("error", "http", "rpc"), [
    (InvalidArgumentError("texts cannot be empty", "EMPTY_DOCUMENTS"), (400, "Empty"),
     grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidArgumentError("too many", "TOO_MANY_INPUTS"), (413, "Validation"), grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidArgumentError("bad field", "INVALID_FIELD"), (422, "Validation"), grpc.StatusCode.INVALID_ARGUMENT),
    (WrongTaskError("not a reranker"), (424, "Backend"), grpc.StatusCode.FAILED_PRECONDITION),
    (OverloadedError("busy"), (429, "Overloaded"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BackendError(), (424, "Backend"), grpc.StatusCode.INTERNAL),
])
def test_teis_distinctions(error: CrossrankError, http: tuple[int, str], rpc: grpc.StatusCode) -> None:
    assert tei_error(error) == http
    assert tei_grpc_code(error) == rpc
