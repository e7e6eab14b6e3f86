"""Prometheus metrics of the gateway and of Triton, scraped after traffic; access log lines."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest
from crossrank_client import CrossEncoderClient, CrossrankClientError

from tests.e2e.server_process import ServerProcess
from tests.e2e.server_process import metric_value as _value
from tests.e2e.server_process import scrape as _scrape

pytestmark = pytest.mark.e2e


def test_gateway_and_triton_metrics_after_traffic(server: ServerProcess) -> None:
    before = _scrape(server.metrics_port)
    with CrossEncoderClient(server.target) as client:
        for _ in range(3):
            client.rerank("alpha", ["beta gamma", "alpha delta"], model="tiny-bert")
        with pytest.raises(CrossrankClientError):
            client.rerank("", ["x"], model="tiny-bert")
    after = _scrape(server.metrics_port)

    ok = r'crossrank_requests_total\{code="OK",method="Rerank",model="tiny-bert"\}'
    bad = r'crossrank_requests_total\{code="INVALID_ARGUMENT",method="Rerank",model="tiny-bert"\}'
    assert _value(after, ok) - (_value(before, ok) if re.search(ok, before) else 0) == 3
    assert _value(after, bad) >= 1
    assert _value(after, r'crossrank_pairs_total\{model="tiny-bert"\}') >= 6
    assert _value(after, r'crossrank_tokens_total\{model="tiny-bert"\}') > 0
    assert _value(after, r'crossrank_backend_duration_seconds_count\{model="tiny-bert"\}') >= 3
    assert _value(after, r'crossrank_request_duration_seconds_count\{method="Rerank"\}') >= 4
    assert _value(after, "crossrank_triton_ready") == 1
    # In flight: this test's requests are done; a request another test abandoned may still be finishing.
    deadline = time.monotonic() + 30
    while _value(_scrape(server.metrics_port), "crossrank_inflight_requests") != 0:
        assert time.monotonic() < deadline, "crossrank_inflight_requests never returned to 0"
        time.sleep(0.2)

    triton = _scrape(server.triton_metrics_port)
    assert _value(triton, r'nv_inference_request_success\{model="tiny-bert",version="1"\}') >= 3


def test_access_log_has_one_line_per_request(server: ServerProcess) -> None:
    with CrossEncoderClient(server.target) as client:
        client.rerank("alpha", ["beta"], model="tiny-bert")
    lines = [line for line in server.log().splitlines() if "crossrank.access" in line and "method=Rerank" in line]
    assert lines and re.search(r"request_id=\w+ method=Rerank model=tiny-bert pairs=1 code=OK latency_ms=", lines[-1])


def test_concurrent_requests_of_different_lengths_share_encoder_executions(server: ServerProcess) -> None:
    """Triton's dynamic batcher merges concurrent requests whose padded lengths differ (ragged batching):
    Triton's own counters show fewer encoder executions than encoder requests."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = 'model="tiny-bert_encoder",version="1"'

    def counts() -> tuple[float, float]:
        text = _scrape(server.triton_metrics_port)
        return (_value(text, rf"nv_inference_request_success\{{{encoder}\}}"),
                _value(text, rf"nv_inference_exec_count\{{{encoder}\}}"))

    def call(i: int) -> None:
        with CrossEncoderClient(server.target) as client:
            for k in range(4):
                longest = 1 + (i * 4 + k) % 20  # so that concurrent requests are padded to different lengths
                documents = [" ".join(["alpha beta"] * (1 + j % longest)) for j in range(30)]
                client.rerank(f"query {i}", documents, model="tiny-bert")

    requests_before, executions_before = counts()
    with ThreadPoolExecutor(24) as pool:
        list(pool.map(call, range(24)))
    requests_after, executions_after = counts()
    requests, executions = requests_after - requests_before, executions_after - executions_before
    assert requests >= 96
    # Without merging, executions equal requests; how many merge depends on the machine's load (a full run on
    # two cores once executed 62 of 96, over the 0.6 bound this asked before), so it asks for a fifth at least.
    assert executions < 0.8 * requests, f"{executions:.0f} executions for {requests:.0f} requests"


def test_http_calls_are_counted_and_client_model_names_never_become_labels(server: ServerProcess) -> None:
    import json

    invented = [f"made-up-{i}" for i in range(12)] + ["evil\nname", "x" * 500]
    with CrossEncoderClient(server.target) as client:
        for name in invented:
            with pytest.raises(CrossrankClientError):
                client.rerank("alpha", ["beta"], model=name)
    for name in invented[:3]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.http_port}/v1/rerank", method="POST",
            data=json.dumps({"query": "alpha", "documents": ["beta"], "model": name}).encode(),
            headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=30)
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/v1/rerank", method="POST",
        data=json.dumps({"query": "alpha", "documents": ["beta", "gamma"], "model": "tiny-bert"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    text = _scrape(server.metrics_port)
    labels = set(re.findall(r'model="([^"]*)"', text))
    with CrossEncoderClient(server.target) as client:
        served = {m.name for m in client.list_models()}
    assert labels <= served | {"other", "-"}, labels - served
    assert _value(text, r'crossrank_requests_total\{code="NOT_FOUND",method="Rerank",model="other"\}') >= 12
    assert _value(text, r'crossrank_requests_total\{code="NOT_FOUND",method="HttpRerank",model="other"\}') >= 3
    assert _value(text, r'crossrank_requests_total\{code="OK",method="HttpRerank",model="tiny-bert"\}') >= 1
    # The access log escapes what clients send: no line of it starts with the forged text.
    log = server.log()
    assert "evil\\nname" in log and not any(line.startswith("name") for line in log.splitlines())
    assert "x" * 200 not in log
