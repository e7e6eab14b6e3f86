"""Runs the real gateway servers (fake backend) in their own thread and event loop, so that blocking clients,
async clients, raw gRPC channels and raw HTTP sockets can all call them over real sockets. The gRPC server
always runs; the HTTP API too with `http=True`, behind the same pipeline (keys, admission, metrics)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from crossrank.gateway.core.admission import ApiKeys, Limiter
from crossrank.gateway.core.metrics import GatewayMetrics
from crossrank.gateway.core.pipeline import RequestPipeline
from crossrank.gateway.core.scoring import CrossEncoderCore
from crossrank.gateway.core.validation import Limits
from crossrank.gateway.transport.grpc_server import add_port, build_server, set_serving
from tests.fakes import RERANKER, FakeBackend


class GatewayThread:
    def __init__(self, *, api_keys: tuple[str, ...] = (), max_in_flight: int = 0, max_queue: int = 0,
                 max_inflight_bytes: int = 0, tls: tuple[str, str, str] = ("", "", ""),
                 delay_s: float = 0.0, http: bool = False, http_options: dict[str, Any] | None = None,
                 grpc_options: dict[str, Any] | None = None) -> None:
        self.backend = FakeBackend(delay_s=delay_s)
        self.metrics = GatewayMetrics()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.http_port = 0
        self._api_keys = api_keys
        self._limiter = (max_in_flight, max_queue, max_inflight_bytes)
        self._tls = tls
        self._http = http
        self._http_options = http_options or {}
        self._grpc_options = grpc_options or {}
        self._http_runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        core = CrossEncoderCore(self.backend, Limits(max_documents=50, max_text_chars=1000), RERANKER.name)
        limiter = Limiter(*self._limiter) if self._limiter[0] else None
        pipeline = RequestPipeline(self.metrics, ApiKeys(self._api_keys), limiter, core.model_names)
        self.server, self.health = build_server(core, 1024 * 1024, pipeline, **self._grpc_options)
        self.port = add_port(self.server, "127.0.0.1:0", *self._tls)
        await self.server.start()
        await set_serving(self.health, True)
        if self._http:
            from crossrank.gateway.transport import http_api

            api = http_api.HttpApi(core, pipeline, lambda: True, 1024 * 1024, **self._http_options)
            self._http_runner, self.http_port = await http_api.start(api, "127.0.0.1", 0)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, method: str, code: str) -> float:
        """How many calls of `method` ended with `code`, by the gateway's own metrics."""
        return sum(sample.value for family in self.metrics.registry.collect() for sample in family.samples
                   if sample.name == "crossrank_requests_total" and sample.labels["method"] == method
                   and sample.labels["code"] == code)

    def start(self) -> GatewayThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def stop() -> None:
            if self._http_runner is not None:
                await self._http_runner.cleanup()
            await self.server.stop(None)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
