"""Retryable HTTP errors say when to retry: 503 (the backend is down or a model process is being restarted)
and 429 carry `Retry-After`; other errors do not."""

from __future__ import annotations

from crossrank.gateway.core.errors import BackendUnavailableError, InvalidArgumentError, OverloadedError
from crossrank.gateway.transport import http_errors, tei_http


def test_retryable_errors_carry_retry_after() -> None:
    unavailable = http_errors.from_error(BackendUnavailableError(), "rid")
    assert unavailable.status == 503 and unavailable.headers["Retry-After"] == http_errors.RETRY_AFTER_S
    overloaded = http_errors.from_error(OverloadedError("in-flight requests"), "rid")
    assert overloaded.status == 429 and "Retry-After" in overloaded.headers
    assert "Retry-After" in tei_http.error_response(BackendUnavailableError(), "rid").headers


def test_other_errors_do_not() -> None:
    bad = http_errors.from_error(InvalidArgumentError("bad", "BAD"), "rid")
    assert bad.status == 400 and "Retry-After" not in bad.headers
