"""Runs the real HTTP API (fake backend, the real request pipeline) in its own thread and event loop, so that
blocking HTTP clients, framework clients included, can call it over a real socket."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from crossrank.gateway.core.admission import ApiKeys, Limiter
from crossrank.gateway.core.metrics import GatewayMetrics
from crossrank.gateway.core.pipeline import RequestPipeline
from crossrank.gateway.core.scoring import CrossEncoderCore
from crossrank.gateway.core.validation import Limits
from crossrank.gateway.transport import http_api
from tests.fakes import RERANKER, FakeBackend


class HttpThread:
    def __init__(self, *, api_keys: tuple[str, ...] = (), max_in_flight: int = 4, max_queue: int = 4,
                 max_body_bytes: int = 1024 * 1024, limits: Limits | None = None) -> None:
        self.backend = FakeBackend()
        self.metrics = GatewayMetrics()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._api_keys = api_keys
        self._limiter = (max_in_flight, max_queue)
        self._max_body_bytes = max_body_bytes
        self._limits = limits or Limits(max_documents=50, max_text_chars=1000)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        core = CrossEncoderCore(self.backend, self._limits, RERANKER.name)
        await core.refresh_models()
        pipeline = RequestPipeline(self.metrics, ApiKeys(self._api_keys), Limiter(*self._limiter), core.model_names)
        api = http_api.HttpApi(core, pipeline, lambda: True, self._max_body_bytes, 30.0,
                               max_in_flight=self._limiter[0])
        self._runner, self.port = await http_api.start(api, "127.0.0.1", 0)
        self.app = self._runner.app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
