"""Faults with the real gateway and the real Triton: Triton killed under load, Triton absent at start and
coming back (external mode), and SIGTERM while requests are in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from crossrank_client import AsyncCrossEncoderClient, CrossEncoderClient, CrossrankClientError, RetryPolicy
from grpc_health.v1 import health_pb2

from crossrank.embedded_triton.launcher import free_port
from crossrank.export.exporter import ExportOptions, export
from crossrank.gateway.transport.grpc_server import SERVICE_NAME as SERVICE
from tests.e2e.server_process import ServerProcess, alive, children

pytestmark = pytest.mark.e2e
SERVING = health_pb2.HealthCheckResponse.SERVING
NO_RETRY = RetryPolicy(attempts=1)


def _triton_pid(server: ServerProcess) -> int:
    for pid in children(server.process.pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "tritonserver":
                return pid
        except OSError:
            continue
    raise AssertionError("no tritonserver child")


def _wait(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError


def test_killed_triton_is_restarted_and_no_call_hangs(repository: Path, tmp_path: Path) -> None:
    server = ServerProcess(["--repository", str(repository), "--default-model", "tiny-bert"],
                           log=tmp_path / "serve.log")
    outcomes: list[tuple[str, float]] = []
    stop = threading.Event()

    def load() -> None:
        with CrossEncoderClient(server.target, retry=NO_RETRY, timeout=5) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    client.rerank("alpha", ["beta", "alpha gamma"])
                    outcomes.append(("OK", time.monotonic() - started))
                except CrossrankClientError as exc:
                    outcomes.append((exc.code.name, time.monotonic() - started))

    try:
        server.wait_serving()
        old = _triton_pid(server)
        worker = threading.Thread(target=load)
        worker.start()
        _wait(lambda: len(outcomes) >= 5, 30)
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        _wait(lambda: server.health() != SERVING, 10)
        _wait(lambda: server.health() == SERVING, 120)
        with CrossEncoderClient(server.target, timeout=30) as client:
            assert len(client.rerank("alpha", ["beta"])) == 1
        recovery = time.monotonic() - killed_at
        stop.set()
        worker.join(30)
        print(f"\nTriton killed: SERVING again and answering after {recovery:.1f} s")
        assert recovery < 60
        assert _triton_pid(server) != old
        codes = {code for code, _ in outcomes}
        assert codes <= {"OK", "UNAVAILABLE"}, codes
        assert "UNAVAILABLE" in codes
        assert max(duration for _, duration in outcomes) < 6  # within the 5 s deadline: none hung
        assert "restarting in" in server.log()
    finally:
        stop.set()
        assert server.terminate() == 0


def test_external_triton_absent_at_start_then_back(repository: Path, tmp_path: Path) -> None:
    triton_port = free_port()
    gateway = ServerProcess(["--triton-url", f"127.0.0.1:{triton_port}"], log=tmp_path / "gateway.log")
    embedded: ServerProcess | None = None
    try:
        _wait(lambda: gateway.health() >= 0, 30)  # the gateway answers, Triton is not there
        assert gateway.health() != SERVING
        assert gateway.health("crossrank.liveness") == SERVING
        with CrossEncoderClient(gateway.target, retry=NO_RETRY) as client:
            with pytest.raises(CrossrankClientError) as caught:
                client.rerank("q", ["d"])
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE

        for round_ in range(2):
            embedded = ServerProcess(["--repository", str(repository)], log=tmp_path / f"triton{round_}.log",
                                     env={"CROSSRANK_TRITON_GRPC_PORT": str(triton_port)})
            embedded.wait_serving()
            _wait(lambda: gateway.health() == SERVING, 30)
            with CrossEncoderClient(gateway.target) as client:
                assert len(client.rerank("alpha", ["beta"], model="tiny-bert")) == 1
            assert embedded.terminate() == 0
            _wait(lambda: gateway.health() != SERVING, 30)
    finally:
        if embedded is not None and embedded.process.poll() is None:
            embedded.terminate()
        assert gateway.terminate() == 0


def _inflight(server: ServerProcess) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^crossrank_inflight_requests ([0-9.]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_sigterm_finishes_accepted_requests_and_refuses_new_ones(repository: Path, tmp_path: Path) -> None:
    server = ServerProcess(["--repository", str(repository), "--default-model", "minilm"], log=tmp_path / "s.log")
    server.wait_serving()
    triton = _triton_pid(server)
    documents = [" ".join(["passage words about search ranking"] * 12)] * 100

    def late_http() -> tuple[int, str | None, str]:
        body = json.dumps({"query": "q", "documents": ["d"]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/v1/rerank", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, None, ""
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Retry-After"), exc.read().decode()

    async def scenario() -> tuple[list[str], str, tuple[int, str | None, str]]:
        async with AsyncCrossEncoderClient(server.target, retry=NO_RETRY, timeout=120) as client:
            async def call() -> str:
                try:
                    return f"OK:{len(await client.rerank('query about ranking', documents))}"
                except CrossrankClientError as exc:
                    return exc.code.name

            accepted = [asyncio.create_task(call()) for _ in range(6)]
            await asyncio.to_thread(_wait, lambda: _inflight(server) == 6, 30)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(_wait, lambda: server.health() != SERVING, 10)
            # Late calls, while the accepted ones still run: refused as retryable, never cancelled or reset.
            late = await call()
            http = await asyncio.to_thread(late_http)
            return list(await asyncio.gather(*accepted)), late, http

    try:
        results, late, (status, retry_after, body) = asyncio.run(scenario())
        assert results == ["OK:100"] * 6  # nothing accepted before SIGTERM is lost
        assert late == "UNAVAILABLE"
        assert status == 503 and retry_after and "shutting down" in body
        assert server.process.wait(90) == 0
        assert not alive(triton)
    finally:
        if server.process.poll() is None:
            server.terminate()


def test_deadline_ends_the_call_and_frees_the_gateway(server: ServerProcess) -> None:
    documents = [" ".join(["passage words about search ranking"] * 12)] * 600
    with CrossEncoderClient(server.target, retry=NO_RETRY) as client:
        started = time.monotonic()
        with pytest.raises(CrossrankClientError) as caught:
            client.rerank("query", documents, model="minilm", timeout=0.3)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2
    _wait(lambda: _inflight(server) == 0, 10)
    with CrossEncoderClient(server.target) as client:
        assert len(client.rerank("alpha", ["beta"], model="tiny-bert")) == 1


def _stub_pid(server: ServerProcess, model: str) -> int:
    """The python-backend stub process of Triton model `model` (its command line names the model's model.py)."""
    for pid in children(_triton_pid(server)):
        try:
            if f"/{model}/1/model.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return pid
        except OSError:
            continue
    raise AssertionError(f"no stub process for {model}")


def _http(server: ServerProcess, path: str, body: dict[str, object] | None = None) -> tuple[int, str | None]:
    """(status, Retry-After header) of one HTTP call to the gateway."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")
    except OSError:  # no answer at all (counted as status 0: the checks below allow none)
        return 0, None


@pytest.fixture(scope="module")
def exact_head_repository(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """The tiny model in int8 with the exact head: its fp32 encoder is a stub of its own."""
    repo = tmp_path_factory.mktemp("exact-head-faults") / "model_repository"
    export(ExportOptions(source=str(tiny_bert_dir), name="tiny-exact", repository=repo, precision="int8",
                         exact_head="on"))
    return repo


# The exact head's fp32 encoder is killed with requests of one or two documents, which it scores alone.
@pytest.mark.parametrize(("victim", "model", "repository_fixture"), [
    ("minilm_encoder", "minilm", "repository"), ("tiny-bert_tokenizer", "tiny-bert", "repository"),
    ("tiny-exact_exact_encoder", "tiny-exact", "exact_head_repository")])
def test_killed_stub_is_seen_and_healed(request: pytest.FixtureRequest, tmp_path: Path, victim: str, model: str,
                                        repository_fixture: str) -> None:
    """A python-backend stub killed as the OOM killer would: requests get UNAVAILABLE (HTTP 503 with
    Retry-After), never INTERNAL; health turns NOT_SERVING at once and SERVING again within 30 s, by itself."""
    repository = request.getfixturevalue(repository_fixture)
    server = ServerProcess(["--repository", str(repository), "--default-model", model],
                           log=tmp_path / "serve.log")
    grpc_codes: list[str] = []
    http_answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with CrossEncoderClient(server.target, retry=NO_RETRY, timeout=5) as client:
            while not stop.is_set():
                try:
                    client.rerank("alpha", ["beta", "alpha gamma"], model=model)
                    grpc_codes.append("OK")
                except CrossrankClientError as exc:
                    grpc_codes.append(exc.code.name)
                http_answers.append(_http(server, "/v1/rerank", {"model": model, "query": "alpha",
                                                                  "documents": ["beta"]}))

    try:
        server.wait_serving()
        worker = threading.Thread(target=load)
        worker.start()
        _wait(lambda: len(http_answers) >= 3, 30)
        os.kill(_stub_pid(server, victim), signal.SIGKILL)
        killed_at = time.monotonic()
        seen = _wait(lambda: server.health() != SERVING, 10)
        assert server.health(SERVICE) != SERVING
        assert _http(server, "/health")[0] == 503
        assert server.health("crossrank.liveness") == SERVING  # healing, not dead: no restart of the pod
        _wait(lambda: server.health() == SERVING, 60)
        with CrossEncoderClient(server.target, timeout=30) as client:
            assert len(client.rerank("alpha", ["beta"], model=model)) == 1
        recovery = time.monotonic() - killed_at
        stop.set()
        worker.join(30)
        print(f"\n{victim} stub killed: NOT_SERVING after {seen:.1f} s, SERVING and answering after {recovery:.1f} s")
        assert seen < 3
        assert recovery < 30
        assert set(grpc_codes) <= {"OK", "UNAVAILABLE"}, grpc_codes
        assert "UNAVAILABLE" in grpc_codes or any(status == 503 for status, _ in http_answers)
        assert {status for status, _ in http_answers} <= {200, 503}, http_answers
        assert all(retry for status, retry in http_answers if status == 503), http_answers
        assert _http(server, "/health")[0] == 200
    finally:
        stop.set()
        assert server.terminate() == 0


def _stop_within_10_s(server: ServerProcess, triton: int, situation: str) -> None:
    """SIGTERM: the server exits 0 within 10 s, Triton with it."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(90)
    took = time.monotonic() - started
    print(f"\nstopped {took:.1f} s after SIGTERM, {situation}")
    assert code == 0
    assert took <= 10, server.log()
    assert not alive(triton)


def test_stop_right_after_a_stub_died_is_prompt(repository: Path, tmp_path: Path) -> None:
    server = ServerProcess(["--repository", str(repository), "--default-model", "tiny-bert"],
                           log=tmp_path / "serve.log")
    try:
        server.wait_serving()
        triton = _triton_pid(server)
        os.kill(_stub_pid(server, "tiny-bert_encoder"), signal.SIGKILL)
        # A request meets the dead stub: from then on Triton waits out its whole exit timeout (30 s) at stop.
        with CrossEncoderClient(server.target, retry=NO_RETRY, timeout=10) as client:
            with pytest.raises(CrossrankClientError):
                client.rerank("alpha", ["beta"])
        _stop_within_10_s(server, triton, "a stub dead")
    finally:
        if server.process.poll() is None:
            server.terminate()


def test_stop_is_prompt_when_the_grace_ends_with_work_still_in_triton(repository: Path, tmp_path: Path) -> None:
    """Past the drain's grace the gateway gives up on its calls; Triton must not then wait out its own exit
    timeout (30 s) for the work nobody waits for any more."""
    server = ServerProcess(["--repository", str(repository), "--default-model", "minilm"],
                           env={"CROSSRANK_SHUTDOWN_GRACE_S": "1"}, log=tmp_path / "s.log")
    documents = [" ".join(["passage words about search ranking"] * 12)] * 500

    def call() -> None:
        with CrossEncoderClient(server.target, retry=NO_RETRY, timeout=120) as client:
            with contextlib.suppress(CrossrankClientError):
                client.rerank("query about ranking", documents)

    try:
        server.wait_serving()
        triton = _triton_pid(server)
        callers = [threading.Thread(target=call) for _ in range(4)]  # about a minute of encoder work
        for caller in callers:
            caller.start()
        _wait(lambda: _inflight(server) == 4, 30)
        time.sleep(1)
        _stop_within_10_s(server, triton, "with the grace 1 s and Triton at work")
        for caller in callers:
            caller.join(30)
    finally:
        if server.process.poll() is None:
            server.terminate()
