"""Timing helpers: waiting for a server to be ready, sequential and concurrent request loops, latency
percentiles, process memory, and the CPU's measured fp32 matmul peak."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from crossrank_bench.workload import RerankRequestSpec

NOISY_LOGGERS = ("transformers", "sentence_transformers", "crossrank.triton", "crossrank.embedded_triton.launcher")


def configure_logging() -> None:
    """INFO lines with times; the libraries' and Triton's chatter only from warnings up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_stand_in_arguments(parser: argparse.ArgumentParser, rounds: int) -> None:
    """The options of the short looks at one row of the bench (head, gateway_cost): where the exports and the
    fitted stand-in live, and how many 1 x 100 requests per system and round."""
    parser.add_argument("--repository", type=Path, default=Path("bench/.repository"))
    parser.add_argument("--cache", type=Path, default=Path("bench/.cache"))
    parser.add_argument("--requests", type=int, default=12, help="1 x 100 requests per system and round")
    parser.add_argument("--rounds", type=int, default=rounds)


def export_missing(repository: Path, model_dir: Path, wanted: Sequence[tuple[str, str, str, str]]) -> None:
    """Exports each (name, engine, precision, exact_head) of `model_dir` that is missing from `repository` or
    was written by another crossrank (an older layout would not serve)."""
    from crossrank.export import stamp
    from crossrank.export.exporter import ExportOptions, export

    for name, engine, precision, exact_head in wanted:
        if stamp.foreign_version(stamp.read(repository / name)) is not None:
            export(ExportOptions(source=str(model_dir), name=name, repository=repository, engine=engine,
                                 precision=precision, exact_head=exact_head))


@dataclass(frozen=True)
class Measurement:
    system: str
    scenario: str
    requests: int
    pairs: int
    seconds: float
    pairs_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    runs_pairs_per_s: tuple[float, ...] = ()  # every run's pairs/s, where the measurement was repeated

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def serve_gateway(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """`crossrank serve` with `args` on a free port (no HTTP, no metrics), and its gRPC target."""
    from crossrank.embedded_triton.launcher import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "crossrank.cli", "serve", "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "WARNING", "--metrics-port", "-1",
                                "--http-port", "-1", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(120)


def wait_serving(target: str, process: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until `crossrank serve` at `target` reports SERVING; raises if it exits or times out."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    started = time.perf_counter()
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError("crossrank serve exited during the benchmark")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return time.perf_counter() - started
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError("crossrank serve did not become ready")


def median_run(runs: Sequence[Measurement]) -> Measurement:
    """The run with the median throughput (the lower middle for an even count), with all runs' pairs/s."""
    ordered = sorted(runs, key=lambda m: m.pairs_per_s)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(middle, runs_pairs_per_s=tuple(m.pairs_per_s for m in runs))


def _summarize(system: str, scenario: str, specs: Sequence[RerankRequestSpec], seconds: float,
               latencies: list[float]) -> Measurement:
    pairs = sum(len(s.documents) for s in specs)
    ms = np.array(latencies) * 1000
    return Measurement(system, scenario, len(specs), pairs, seconds, pairs / seconds,
                       float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(np.percentile(ms, 99)))


def run_sequential(system: str, scenario: str, call: Callable[[RerankRequestSpec], Any],
                   specs: Sequence[RerankRequestSpec], warmup: int = 2) -> Measurement:
    for spec in specs[:warmup]:
        call(spec)
    latencies = []
    started = time.perf_counter()
    for spec in specs:
        t0 = time.perf_counter()
        call(spec)
        latencies.append(time.perf_counter() - t0)
    return _summarize(system, scenario, specs, time.perf_counter() - started, latencies)


async def run_concurrent(system: str, scenario: str, call: Callable[[RerankRequestSpec], Awaitable[Any]],
                         specs: Sequence[RerankRequestSpec], concurrency: int, warmup: int = 2) -> Measurement:
    for spec in specs[:warmup]:
        await call(spec)
    latencies: list[float] = []
    queue = list(specs)

    async def worker() -> None:
        while queue:
            spec = queue.pop()
            t0 = time.perf_counter()
            await call(spec)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _summarize(system, scenario, specs, time.perf_counter() - started, latencies)


def rss_mib(pid: int, with_children: bool = False) -> float:
    """Resident memory of a process (and, with `with_children`, all its descendants) in MiB."""
    import psutil

    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)] if with_children else [root]
        total = 0
        for member in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += member.memory_info().rss
        return total / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def matmul_peak_gflops(size: int = 1024, repeats: int = 10) -> float:
    """Best of fp32 matmuls through ONNX Runtime (the engine's own kernels) and numpy."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    best = 0.0
    for run in (lambda: session.run(None, {"a": a, "b": a}), lambda: a @ a):
        run()
        t0 = time.perf_counter()
        for _ in range(repeats):
            run()
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - t0) / 1e9)
    return best


def torch_matmul_peak_gflops(precision: str, size: int = 1024, repeats: int = 10) -> float:
    """PyTorch's square matmul rate at a precision (bf16 runs on AMX / AVX-512 BF16 where the CPU has them)."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(size, size, dtype=dtype)
    a @ a
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - t0) / 1e9


def bert_flops_per_pair(layers: int, hidden: int, intermediate: int, tokens: np.ndarray) -> float:
    """Forward FLOPs per pair at its true (unpadded) length: projections, FFN and attention."""
    per_token = layers * (2 * 4 * hidden * hidden + 2 * 2 * hidden * intermediate)
    attention = layers * 4 * hidden * tokens.astype(np.float64) ** 2
    return float(np.mean(per_token * tokens + attention))


async def paired_overhead_ms(base: Callable[[RerankRequestSpec], Awaitable[Any]],
                             through: Callable[[RerankRequestSpec], Awaitable[Any]],
                             specs: Sequence[RerankRequestSpec]) -> float:
    """Median of (latency through - latency base) over the same requests, the two calls alternating so that
    the machine's drift falls on both alike."""
    differences = []
    for i, spec in enumerate(specs):
        order = (base, through) if i % 2 == 0 else (through, base)
        times = {}
        for call in order:
            t0 = time.perf_counter()
            await call(spec)
            times[call] = time.perf_counter() - t0
        differences.append(times[through] - times[base])
    return float(np.median(differences) * 1000)
