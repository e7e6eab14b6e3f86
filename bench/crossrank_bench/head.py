"""A short look at the exact head alone (`python -m crossrank_bench.head`): served pairs/s of fp32, int8 alone
and int8 with the exact head (and bf16 alone and with it, where the CPU has bf16 hardware) on the MiniLM-L-6
stand-in, 1 query x 100 passages with top_n 10, one request at a
time, with each one's top-10 exactness against served fp32 and the documents it re-scored. The full side by
side (`make bench`) has the same rows among all the others; this takes a few minutes."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from crossrank.embedded_triton.launcher import EmbeddedTriton, TritonOptions
from crossrank.embedded_triton.model_setup import exported_models
from crossrank.export.source import build_demo_model
from crossrank.triton_models.host_cpu import cpu_flags, has_bf16
from crossrank_bench import measure, workload
from crossrank_bench.main import HEAD, MODEL_FP32, _cpu_model, _head_figures, named_exports
from crossrank_bench.systems import ServedSystem

logger = logging.getLogger(__name__)


async def _measure(repository: Path, requests: int, rounds: int) -> dict[str, Any]:
    served_as = {m.name: f"{m.engine} {m.precision}" + (" + exact head" if m.exact_head else "")
                 for m in exported_models(repository)}
    specs = workload.requests(requests, 100, seed=1)
    triton = EmbeddedTriton(TritonOptions(repository))
    url = await triton.start()
    try:
        process, target = measure.serve_gateway(["--triton-url", url])
        try:
            await asyncio.to_thread(measure.wait_serving, target, process, 120)
            names = [MODEL_FP32, *(name for name in served_as if name != MODEL_FP32)]
            systems = [ServedSystem(target, name, served_as[name], top_n=HEAD) for name in names]
            runs: dict[str, list[float]] = {s.name: [] for s in systems}
            for _ in range(rounds):  # interleaved: the machine's drift falls on all alike
                for system in systems:
                    m = await measure.run_concurrent(system.name, "A", system.score, specs, 1)
                    runs[system.name].append(m.pairs_per_s)
            heads = _head_figures(systems[0], systems[1:])
            for system in systems:
                await system.close()
        finally:
            measure.stop(process)
    finally:
        await triton.stop()
    return {name: {"pairs_per_s_median": sorted(rates)[len(rates) // 2], "pairs_per_s_rounds": rates,
                   **heads[name]} for name, rates in runs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossrank_bench.head", description=__doc__)
    measure.add_stand_in_arguments(parser, rounds=3)
    args = parser.parse_args(argv)
    measure.configure_logging()
    model_dir = build_demo_model(args.cache / "demo-model-fitted")
    measure.export_missing(args.repository, model_dir, named_exports(has_bf16(cpu_flags())))
    figures = asyncio.run(_measure(args.repository, args.requests, args.rounds))
    print(json.dumps({"cpu": _cpu_model(), "rows": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
