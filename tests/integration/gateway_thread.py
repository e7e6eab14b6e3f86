"""Runs the real gateway (fake backend) in its own thread and event loop, assembled by the same steps as
`crossrank serve` (crossrank/assembly.py), so that blocking clients, async clients, raw gRPC channels and HTTP
clients can all call it over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from crossrank import assembly
from crossrank.gateway.transport.grpc_server import set_serving
from crossrank.settings import Settings
from tests.fakes import RERANKER, FakeBackend


class GatewayThread:
    def __init__(self, *, api_keys: tuple[str, ...] = (), max_in_flight: int = 0, max_queue: int = 0,
                 max_inflight_bytes: int = 0, tls: tuple[str, str, str] = ("", "", ""),
                 delay_s: float = 0.0, max_documents: int = 50, **settings: Any) -> None:
        """`settings`: any other setting, by its field name in `Settings`."""
        self.backend = FakeBackend(delay_s=delay_s)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.http_port = 0
        self.settings = Settings(
            host="127.0.0.1", port=0, http_port=0, metrics_port=-1, default_model=RERANKER.name,
            max_documents=max_documents, max_text_chars=1000, max_message_bytes=1024 * 1024, api_keys=api_keys,
            tls_cert_file=tls[0], tls_key_file=tls[1], tls_client_ca_file=tls[2], **settings)
        if max_in_flight:  # else admission's defaults
            self.settings = replace(self.settings, max_in_flight=max_in_flight, max_queue=max_queue,
                                    max_inflight_bytes=max_inflight_bytes)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.built = built = assembly.build_core(self.settings, self.backend)
        self.opened = await assembly.open_transports(self.settings, built)
        self.server, self.health = self.opened.server, self.opened.health
        self.port, self.http_port = self.opened.port, self.opened.http_port
        self.readiness = built.readiness  # what the HTTP /health answers
        self.metrics = built.metrics
        await set_serving(self.health, True)
        self.readiness.serving = True

    def count(self, method: str, code: str) -> float:
        """How many calls of `method` ended with `code`, by the gateway's own metrics (all models together)."""
        return sum(sample.value for family in self.metrics.registry.collect() for sample in family.samples
                   if sample.name == "crossrank_requests_total" and sample.labels["method"] == method
                   and sample.labels["code"] == code)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"{'https' if self.settings.tls_cert_file else 'http'}://127.0.0.1:{self.http_port}"

    def start(self) -> GatewayThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        stopping = assembly.drain_and_stop(self.opened, self.built.pipeline, None)
        asyncio.run_coroutine_threadsafe(stopping, self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def running() -> Iterator[GatewayThread]:
    """A started gateway with the default options, stopped on leaving."""
    gateway = GatewayThread().start()
    try:
        yield gateway
    finally:
        gateway.stop()
