"""Prometheus metrics of the gateway, served on their own port (`metrics.port`).

Requests by method, model and status code; latency histograms for the whole request and for the time
spent in Triton (its queue plus inference; Triton's own metrics split those per model); pairs and tokens
scored; requests in flight; whether Triton is ready.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("crossrank_requests", "Requests by method, model and gRPC status code",
                                ["method", "model", "code"], registry=self.registry)
        self.latency = Histogram("crossrank_request_duration_seconds", "Whole-request latency in the gateway",
                                 ["method"], buckets=_BUCKETS, registry=self.registry)
        self.backend_latency = Histogram("crossrank_backend_duration_seconds",
                                         "Time a request spent in Triton (queue and inference)", ["model"],
                                         buckets=_BUCKETS, registry=self.registry)
        self.pairs = Counter("crossrank_pairs", "Pairs scored", ["model"], registry=self.registry)
        self.tokens = Counter("crossrank_tokens", "Tokens processed by the encoder", ["model"],
                              registry=self.registry)
        self.in_flight = Gauge("crossrank_inflight_requests", "Requests being processed",
                               registry=self.registry)
        self.triton_ready = Gauge("crossrank_triton_ready", "1 when Triton and its models are ready",
                                  registry=self.registry)

    def serve(self, host: str, port: int) -> int:
        """Starts the /metrics HTTP endpoint in a background thread; returns the bound port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        bound = int(server.server_address[1])
        logger.info("metrics on http://%s:%d/metrics", host, bound)
        return bound
