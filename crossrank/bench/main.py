"""Runs the side-by-side benchmark and writes JSON, a markdown table and a PNG chart to bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from crossrank.bench import infinity, measure, report, workload
from crossrank.bench.systems import OnnxRuntimeSystem, SentenceTransformersSystem, ServedSystem, TritonDirectSystem
from crossrank.export.exporter import ExportOptions, export
from crossrank.export.source import build_demo_model
from crossrank.triton_launcher import EmbeddedTriton, TritonOptions, free_port

logger = logging.getLogger(__name__)
MODEL = "minilm-l6"
MODEL_INT8 = "minilm-l6-int8"
SIZES = {  # requests per scenario: (A: 1x100 sequential, B: 16 clients x 10, C: 4 clients x 100)
    "full": {"A": 30, "B": 320, "C": 24},
    "quick": {"A": 6, "B": 64, "C": 8},
}


def _prepare(repository: Path, cache: Path) -> Path:
    model_dir = build_demo_model(cache / "demo-model")
    for name, precision in ((MODEL, "fp32"), (MODEL_INT8, "int8")):
        if not (repository / name / "config.pbtxt").exists():
            export(ExportOptions(source=str(model_dir), name=name, repository=repository, precision=precision))
    return model_dir


def _wait_serving(target: str, process: subprocess.Popen[bytes], timeout: float) -> float:
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


def _serve(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "crossrank.cli", "serve", "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "WARNING", "--metrics-port", "-1",
                                "--http-port", "-1", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"127.0.0.1:{port}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(120)


def cold_start(repository: Path) -> float:
    process, target = _serve(["--repository", str(repository)])
    try:
        return _wait_serving(target, process, 300)
    finally:
        _stop(process)


async def _served(repository: Path, specs: dict[str, list[workload.RerankRequestSpec]],
                  results: list[measure.Measurement], memory: dict[str, float], repeat: int) -> None:
    triton = EmbeddedTriton(TritonOptions(repository))
    url = await triton.start()
    process, target = _serve(["--triton-url", url])
    served, direct = ServedSystem(target, MODEL), TritonDirectSystem(url, MODEL)
    try:
        await asyncio.to_thread(_wait_serving, target, process, 120)
        for system in (direct, served):
            results.append(await measure.repeat_concurrent(repeat, system.name, "A", system.score, specs["A"], 1))
            results.append(await measure.repeat_concurrent(repeat, system.name, "B", system.score, specs["B"], 16))
        results.append(await measure.repeat_concurrent(repeat, served.name, "C", served.score, specs["C"], 4))
        int8 = ServedSystem(target, MODEL_INT8)
        results.append(await measure.repeat_concurrent(repeat, int8.name, "A", int8.score, specs["A"], 1))
        await int8.close()
        # Gateway overhead on small requests: 1 query x 10 passages, one at a time.
        for system in (direct, served):
            results.append(await measure.repeat_concurrent(repeat, system.name, "B-sequential", system.score,
                                                           specs["B"][:64], 1))
        memory["gateway_rss_mib"] = measure.rss_mib([process.pid])
        memory["triton_rss_mib"] = measure.rss_mib(measure.process_tree(triton.pid))
    finally:
        await served.close()
        await direct.close()
        _stop(process)
        await triton.stop()


async def _infinity(venv: Path, model_dir: Path, specs: dict[str, list[workload.RerankRequestSpec]],
                    results: list[measure.Measurement], output: Path, repeat: int) -> dict[str, Any]:
    """Infinity on scenarios A, B and C; returns what the summary records about it."""
    reason = infinity.unavailable(venv)
    if reason:
        return {"infinity": reason}
    output.mkdir(parents=True, exist_ok=True)
    server = infinity.InfinityServer(venv, model_dir, output / "infinity.log")
    try:
        ready_s = await asyncio.to_thread(server.wait_ready)
        system = infinity.InfinitySystem(server)
        try:
            for scenario, concurrency in (("A", 1), ("B", 16), ("C", 4)):
                results.append(await measure.repeat_concurrent(repeat, system.name, scenario, system.score,
                                                               specs[scenario], concurrency))
            scores = await system.score(specs["A"][0])
            rss = measure.rss_mib(measure.process_tree(server.pid))
        finally:
            await system.close()
    except (RuntimeError, TimeoutError) as exc:
        return {"infinity": f"not measured: {exc}"}
    finally:
        server.stop()
    return {"infinity": f"infinity-emb, torch engine, CPU, batch size {infinity.BATCH_SIZE}; ready in {ready_s:.0f} s",
            "infinity_rss_mib": rss, "infinity_scores_first_request": [float(x) for x in scores]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crossrank bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workload, under two minutes")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    parser.add_argument("--repository", type=Path, default=Path("bench/.repository"))
    parser.add_argument("--cache", type=Path, default=Path("bench/.cache"))
    parser.add_argument("--infinity-venv", type=Path, default=Path(".venv-infinity"),
                        help="virtual environment with infinity-emb (make bench builds it)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each measurement; the median run is reported (default: 3 full, 1 quick)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "sentence_transformers", "crossrank.triton", "crossrank.triton_launcher"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    sizes = SIZES["quick" if args.quick else "full"]
    specs = {"A": workload.requests(sizes["A"], 100, seed=1), "B": workload.requests(sizes["B"], 10, seed=2),
             "C": workload.requests(sizes["C"], 100, seed=3)}
    model_dir = _prepare(args.repository, args.cache)
    results: list[measure.Measurement] = []
    memory: dict[str, float] = {}

    logger.info("cold start")
    cold = cold_start(args.repository)
    logger.info("sentence-transformers, scenario A")
    st = SentenceTransformersSystem(model_dir)
    results.append(measure.repeat_sequential(repeat, st.name, "A", st.score, specs["A"]))
    st_scores = st.score(specs["A"][0])
    del st
    logger.info("onnxruntime in-process, scenario A")
    ort_system = OnnxRuntimeSystem(args.repository, MODEL)
    results.append(measure.repeat_sequential(repeat, ort_system.name, "A", ort_system.score, specs["A"]))
    ort_int8 = OnnxRuntimeSystem(args.repository, MODEL_INT8)
    results.append(measure.repeat_sequential(repeat, ort_int8.name, "A", ort_int8.score, specs["A"]))
    tokens = ort_system.token_counts(specs["A"][0])
    padding = {"A": ort_system.padding(specs["A"], 1), "B": ort_system.padding(specs["B"], 16)}
    del ort_system, ort_int8
    logger.info("infinity, scenarios A, B, C")
    peer = asyncio.run(_infinity(args.infinity_venv, model_dir, specs, results, args.output, repeat))
    if "infinity_scores_first_request" in peer:  # same model, same scores: the comparison is fair
        peer["infinity_max_abs_diff_to_sentence_transformers"] = float(
            max(abs(a - b) for a, b in zip(peer.pop("infinity_scores_first_request"), st_scores)))
    logger.info("crossrank served and Triton direct, scenarios A, B, C")
    asyncio.run(_served(args.repository, specs, results, memory, repeat))

    config = json.loads((model_dir / "config.json").read_text())
    flops = measure.bert_flops_per_pair(config["num_hidden_layers"], config["hidden_size"],
                                        config["intermediate_size"], tokens)
    summary: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": "MiniLM-L-6 stand-in (all-MiniLM-L6-v2 backbone, one-logit head), fp32, engine onnx-python",
        "mean_tokens_per_pair": float(tokens.mean()),
        "flops_per_pair": flops,
        "matmul_peak_gflops": measure.matmul_peak_gflops(),
        "cold_start_s": cold,
        "repeat": repeat,
        "padding_fraction": padding,
        **peer,
        **memory,
        "measurements": [m.as_dict() for m in results],
    }
    report.write(summary, args.output)
    print(report.markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
