"""Every byte sequence sent to the HTTP API gets a 4xx (or a documented code) in the API's JSON error shape,
never a 5xx: the real aiohttp server over a socket, the fake backend behind it."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.gateway_thread import GatewayThread
from tests.integration.http_raw import Reply, exchange, post

SHAPE = {"message", "reason", "request_id", "field_violations"}


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    thread = GatewayThread().start()
    yield thread
    thread.stop()


def _refused(reply: Reply, status: int, reason: str) -> dict:
    assert reply.status == status, reply.body[:300]
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert SHAPE <= set(body) and body["reason"] == reason and body["message"] and body["request_id"]
    return body


def _still_serves(gateway: GatewayThread) -> None:
    assert post(gateway.http_port, b'{"query": "q", "documents": ["d", "e"]}').status == 200


@pytest.mark.parametrize(("name", "body", "field"), [
    ("100,000 nested arrays", b'{"query": "q", "documents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
    ("a 5,000-digit integer", b'{"query": "q", "documents": ["d"], "top_n": ' + b"7" * 5000 + b"}", None),
    ("a lone surrogate in a document", b'{"query": "q", "documents": ["ok", "a\\ud800b"]}', "documents[1]"),
    ("a lone surrogate in the query", b'{"query": "\\udfff", "documents": ["d"]}', "query"),
    ("a lone surrogate in the model name", b'{"model": "\\ud800", "query": "q", "documents": ["d"]}', "model"),
    ("not UTF-8", b'{"query": "\xff\xfe", "documents": ["d"]}', None),
    ("NaN timeout", b'{"query": "q", "documents": ["d"], "timeout_s": NaN}', "timeout_s"),
])
def test_hostile_json_is_400_not_500(gateway: GatewayThread, name: str, body: bytes, field: str | None) -> None:
    refused = _refused(post(gateway.http_port, body), 400,
                       "INVALID_FIELD" if field == "timeout_s" else "MALFORMED_REQUEST")
    if field:
        assert [v["field"] for v in refused["field_violations"]] == [field]
    _still_serves(gateway)


def test_non_ascii_authorization_on_a_server_with_keys_is_401() -> None:
    keyed = GatewayThread(api_keys=("s3cret",)).start()
    try:
        for value in (b"Bearer \xff\xfe\xfd", b"Bearer caf\xc3\xa9", b"\xe2\x82\xac", b"Bearer s3cret\x80"):
            _refused(post(keyed.http_port, b'{"query": "q", "documents": ["d"]}', headers=b"Authorization: " + value
                          + b"\r\n"), 401, "UNAUTHENTICATED")
        assert post(keyed.http_port, b'{"query": "q", "documents": ["d"]}',
                    headers=b"Authorization: Bearer s3cret\r\n").status == 200
    finally:
        keyed.stop()


@pytest.mark.parametrize(("request_", "status", "reason"), [
    (b"GET /nowhere HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n", 404, "NOT_FOUND"),
    (b"GET /v1/rerank HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
    (b"DELETE /health HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
    (b"POST /v1/rerank HTTP/1.1\r\nHost: g\r\nContent-Length: nope\r\n\r\n", 400, "MALFORMED_REQUEST"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n", 400, "MALFORMED_REQUEST"),
    (b"GET /health HTTP/1.1\r\nHost: g\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n", 400, "MALFORMED_REQUEST"),
    (b"POST /v1/rerank HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
     b"zz\r\n{}\r\n0\r\n\r\n", 400, "MALFORMED_REQUEST"),
])
def test_the_frameworks_own_errors_come_in_the_apis_json_shape(gateway: GatewayThread, request_: bytes,
                                                                status: int, reason: str) -> None:
    reply = exchange(gateway.http_port, request_)
    _refused(reply, status, reason)
    if status == 405:
        assert reply.headers["allow"]
    _still_serves(gateway)


def test_a_body_over_the_limit_is_413_in_the_json_shape(gateway: GatewayThread) -> None:
    big = json.dumps({"query": "q", "documents": ["x" * 1000] * 1100}).encode()  # over the 1 MiB limit
    _refused(post(gateway.http_port, big), 413, "MESSAGE_TOO_LARGE")
    chunked = (b"POST /v1/rerank HTTP/1.1\r\nHost: g\r\nConnection: close\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(b"%x\r\n%s\r\n" % (len(p), p)
                                                               for p in [big[i:i + 65536]
                                                                         for i in range(0, len(big), 65536)])
               + b"0\r\n\r\n")
    _refused(exchange(gateway.http_port, chunked), 413, "MESSAGE_TOO_LARGE")
    _still_serves(gateway)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/json; charset=latin-1", "application/jsonx"])
def test_a_content_type_that_is_not_json_is_415(gateway: GatewayThread, content_type: str) -> None:
    _refused(post(gateway.http_port, b'{"query": "q", "documents": ["d"]}', content_type=content_type), 415,
             "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("content_type", [None, "application/json", "Application/JSON; charset=UTF-8",
                                          "application/vnd.api+json"])
def test_json_content_types_and_none_are_accepted(gateway: GatewayThread, content_type: str | None) -> None:
    assert post(gateway.http_port, b'{"query": "q", "documents": ["d"]}', content_type=content_type).status == 200


def test_a_client_that_disconnects_mid_body_counts_as_cancelled(gateway: GatewayThread,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    before = gateway.count("HttpRerank", "CANCELLED"), gateway.count("HttpRerank", "INTERNAL")
    with caplog.at_level(logging.INFO):
        with socket.create_connection(("127.0.0.1", gateway.http_port)) as sock:
            sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 10000\r\n\r\n{\"query\": \"q\", \"docu")
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while gateway.count("HttpRerank", "CANCELLED") == before[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert gateway.count("HttpRerank", "CANCELLED") == before[0] + 1
    assert gateway.count("HttpRerank", "INTERNAL") == before[1]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    access = [r.getMessage() for r in caplog.records if r.name == "crossrank.access"]
    assert access and "code=CANCELLED" in access[-1] and "status=499" in access[-1]
    _still_serves(gateway)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(["model", "query", "documents", "top_n", "return_documents",
                                               "raw_scores", "timeout_s", "instruction", "max_tokens_per_doc",
                                               "max_chunks_per_doc", "other"]),
                              json_values, max_size=6))
def test_generated_json_bodies_never_get_a_5xx(gateway: GatewayThread, fields: dict) -> None:
    reply = post(gateway.http_port, json.dumps(fields).encode())
    assert reply.status < 500, reply.body[:300]
    if reply.status >= 400:
        assert SHAPE <= set(reply.json())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200))
def test_generated_bytes_never_get_a_5xx(gateway: GatewayThread, body: bytes) -> None:
    reply = post(gateway.http_port, body)
    assert 400 <= reply.status < 500 and SHAPE <= set(reply.json())
