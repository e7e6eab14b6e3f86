"""The gateway's own cost alone (`python -m crossrank_bench.gateway_cost`): scenario A (1 query x 100 passages,
one request at a time) on the fp32 MiniLM-L-6 stand-in, through the gateway and to Triton's ensemble directly,
the two interleaved round by round so that the machine's drift falls on both alike; with the gateway's CPU time
per request (what it takes from the cores the encoder shares) and the paired latency difference. The full side
by side (`make bench`) has the same two rows among all the others; this takes a few minutes."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import psutil

from crossrank.embedded_triton.launcher import EmbeddedTriton, TritonOptions
from crossrank.export.source import build_demo_model
from crossrank_bench import measure, workload
from crossrank_bench.main import MODEL_FP32, _cpu_model
from crossrank_bench.systems import ServedSystem, TritonDirectSystem


async def _measure(repository: Path, requests: int, rounds: int) -> dict[str, Any]:
    specs = workload.requests(requests, 100, seed=1)
    triton = EmbeddedTriton(TritonOptions(repository))
    url = await triton.start()
    try:
        process, target = measure.serve_gateway(["--triton-url", url])
        try:
            await asyncio.to_thread(measure.wait_serving, target, process, 120)
            gateway = psutil.Process(process.pid)
            served, direct = ServedSystem(target, MODEL_FP32), TritonDirectSystem(url, MODEL_FP32)
            rates: dict[str, list[float]] = {"served": [], "direct": []}
            cpu_ms: list[float] = []
            for round_ in range(rounds):
                order = (("direct", direct), ("served", served)) if round_ % 2 == 0 else \
                    (("served", served), ("direct", direct))
                for name, system in order:
                    before = sum(gateway.cpu_times()[:2])
                    m = await measure.run_concurrent(name, "A", system.score, specs, 1)
                    if name == "served":  # warm-up requests included: 2 more than measured
                        cpu_ms.append((sum(gateway.cpu_times()[:2]) - before) * 1000 / (len(specs) + 2))
                    rates[name].append(m.pairs_per_s)
            overhead = await measure.paired_overhead_ms(direct.score, served.score, specs * 2)
            await served.close()
            await direct.close()
        finally:
            measure.stop(process)
    finally:
        await triton.stop()
    median = {name: sorted(r)[len(r) // 2] for name, r in rates.items()}
    return {"pairs_per_s_rounds": rates, "pairs_per_s_median": median,
            "served_over_direct": median["served"] / median["direct"],
            "gateway_cpu_ms_per_request": sorted(cpu_ms)[len(cpu_ms) // 2],
            "paired_latency_overhead_ms_p50": overhead}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossrank_bench.gateway_cost", description=__doc__)
    measure.add_stand_in_arguments(parser, rounds=4)
    args = parser.parse_args(argv)
    measure.configure_logging()
    model_dir = build_demo_model(args.cache / "demo-model-fitted")
    measure.export_missing(args.repository, model_dir, [(MODEL_FP32, "onnx-python", "fp32", "off")])
    figures = asyncio.run(_measure(args.repository, args.requests, args.rounds))
    print(json.dumps({"cpu": _cpu_model(), **figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
