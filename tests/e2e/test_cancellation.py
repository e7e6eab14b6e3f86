"""Cancellation reaches the work, with the real gateway and Triton: calls abandoned by their clients (cancelled
over gRPC, past their deadline, an HTTP client that disconnects) stop costing encoder time, so the next small
request is not stuck behind work nobody waits for."""

from __future__ import annotations

import json
import socket
import threading
import time

import grpc
import pytest
from crossrank_client import CrossEncoderClient, CrossrankClientError, RetryPolicy
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc

from tests.e2e.server_process import ServerProcess, metric_value, scrape
from tests.model_builders import rerank_requests

pytestmark = pytest.mark.e2e
MODEL = "minilm"  # the MiniLM-L-6 shape: 100 documents cost the encoder about a second on two cores
ABANDONED_AFTER_S = 0.5


def _http_disconnect(port: int, query: str, documents: list[str]) -> None:
    body = json.dumps({"model": MODEL, "query": query, "documents": documents}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(ABANDONED_AFTER_S)  # the whole request is there; the client leaves before the answer


def test_abandoned_calls_stop_costing_encoder_time(server: ServerProcess) -> None:
    # 300 documents each: even alone a call runs well past ABANDONED_AFTER_S (100 take 0.4 s on a fast
    # two-core machine), so none can end before its client leaves and every one is counted as abandoned.
    requests = rerank_requests(12, 300, seed=21)
    with CrossEncoderClient(server.target, retry=RetryPolicy(attempts=1), timeout=120) as client:
        client.rerank(requests[0][0], requests[0][1][:10], model=MODEL)  # warm
        started = time.monotonic()
        client.rerank(requests[0][0], requests[0][1][:100], model=MODEL)
        one_call_s = time.monotonic() - started
        before = scrape(server.metrics_port)

        channel = grpc.insecure_channel(server.target)
        stub = pb_grpc.CrossEncoderServiceStub(channel)
        calls = [stub.Rerank.future(pb.RerankRequest(model=MODEL, query=q, documents=d)) for q, d in requests[:4]]
        deadlines = [stub.Rerank.future(pb.RerankRequest(model=MODEL, query=q, documents=d),
                                        timeout=ABANDONED_AFTER_S) for q, d in requests[4:8]]
        leavers = [threading.Thread(target=_http_disconnect, args=(server.http_port, q, d)) for q, d in requests[8:]]
        for leaver in leavers:
            leaver.start()
        time.sleep(ABANDONED_AFTER_S)
        for call in calls:
            call.cancel()
        for leaver in leavers:
            leaver.join()
        for call in deadlines:
            with pytest.raises(grpc.RpcError) as caught:
                call.result()
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        channel.close()

        # Twelve calls of 300 documents, about 36 x one_call_s of encoder work had it all run on.
        started = time.monotonic()
        try:
            client.rerank("capital of france", ["Paris is the capital of France."], model=MODEL)
        except CrossrankClientError as exc:  # pragma: no cover - shown in the assertion below
            pytest.fail(f"the small request failed: {exc}")
        waited = time.monotonic() - started
    print(f"\none call of 100 documents {one_call_s:.2f} s; after 12 abandoned calls of 300 a one-document "
          f"request took {waited:.2f} s")
    assert waited < max(2.0, 3 * one_call_s), (waited, one_call_s)

    time.sleep(1.0)  # the gateway counts a cancelled call when its handler has ended
    after = scrape(server.metrics_port)

    def count(text: str, method: str, code: str) -> float:
        try:
            return metric_value(text, rf'crossrank_requests_total\{{code="{code}",method="{method}",model="{MODEL}"\}}')
        except AssertionError:  # not counted yet
            return 0.0

    def new(method: str, code: str) -> float:
        return count(after, method, code) - count(before, method, code)

    # A call past its deadline is cancelled by gRPC on the server's side, or ends on the Triton call's deadline.
    assert new("Rerank", "CANCELLED") + new("Rerank", "DEADLINE_EXCEEDED") == 8
    assert new("HttpRerank", "CANCELLED") == 4  # a client gone is CANCELLED (499), not INTERNAL
