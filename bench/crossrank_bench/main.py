"""Runs the side-by-side benchmark and writes JSON, a markdown table and a PNG chart to bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.embedded_triton.launcher import EmbeddedTriton, TritonOptions
from crossrank.embedded_triton.model_setup import exported_models
from crossrank.export.source import build_demo_model
from crossrank.triton_models.host_cpu import BF16_FLAGS, INT8_FLAGS, cpu_flags, has_bf16
from crossrank_bench import infinity, measure, prefix_reuse, report, workload
from crossrank_bench.systems import (
    OnnxRuntimeSystem,
    SentenceTransformersSystem,
    ServedSystem,
    TorchSortedSystem,
    TritonDirectSystem,
)

logger = logging.getLogger(__name__)
# Exports: the defaults (engine and precision `auto`, chosen on this machine), then the named precisions.
MODEL = "minilm-l6-defaults"
MODEL_FP32 = "minilm-l6-fp32"
MODEL_INT8 = "minilm-l6-int8"
MODEL_BF16 = "minilm-l6-bf16"
MODEL_EXACT = "minilm-l6-int8-exact-head"  # int8 with its fp32 encoder re-scoring the head
MODEL_BF16_EXACT = "minilm-l6-bf16-exact-head"  # bf16 likewise, where the CPU has bf16 hardware
NAMED = (MODEL_FP32, MODEL_INT8, MODEL_BF16)  # served alone at their named precision, scenario A
HEAD = 10  # the top_n of the exact head's rows: a results page
CEILING_BATCHES = (16, 32, 64, 128)
SIZES = {  # requests per scenario: (A: 1x100 sequential, B: 16 clients x 10, C: 4 clients x 100)
    "full": {"A": 30, "B": 320, "C": 24},
    "quick": {"A": 6, "B": 64, "C": 8},
}


def _prepare(repository: Path, cache: Path, bf16: bool) -> tuple[Path, dict[str, str]]:
    """The stand-in's directory and the exports, {name: "engine precision"}."""
    model_dir = build_demo_model(cache / "demo-model-fitted")
    measure.export_missing(repository, model_dir, [(MODEL, "auto", "auto", "auto"), *named_exports(bf16)])
    served = {m.name: f"{m.engine} {m.precision}" + (" + exact head" if m.exact_head else "")
              for m in exported_models(repository)}
    return model_dir, served


def named_exports(bf16: bool) -> list[tuple[str, str, str, str]]:
    """(name, engine, precision, exact head) of the exports at named precisions: fp32, int8 alone and with
    the exact head, and where the CPU has bf16 hardware bf16 alone and with the exact head."""
    wanted = [(MODEL_FP32, "onnx-python", "fp32", "off"), (MODEL_INT8, "onnx-python", "int8", "off"),
              (MODEL_EXACT, "onnx-python", "int8", "on")]
    if bf16:
        wanted += [(MODEL_BF16, "torch-python", "bf16", "off"), (MODEL_BF16_EXACT, "torch-python", "bf16", "on")]
    return wanted


def _best_ceiling(model_dir: Path, precision: str, specs: list[workload.RerankRequestSpec]) -> TorchSortedSystem:
    """The in-process ceiling at its best batch size, picked on a few requests (one model, batch sizes tried)."""
    system = TorchSortedSystem(model_dir, precision, CEILING_BATCHES[0])
    rates = {}
    for batch in CEILING_BATCHES:
        system.batch = batch
        rates[batch] = measure.run_sequential(system.name, "pick", system.score, specs, 1).pairs_per_s
        logger.info("%s: %.0f pairs/s", system.name, rates[batch])
    system.batch = max(rates, key=lambda b: rates[b])
    return system


def cold_start(repository: Path) -> float:
    process, target = measure.serve_gateway(["--repository", str(repository)])
    try:
        return measure.wait_serving(target, process, 300)
    finally:
        measure.stop(process)


Call = Callable[[workload.RerankRequestSpec], Any]


@dataclass
class _Case:
    """One row of the table: a system on a scenario, measured once per round."""

    system: str
    scenario: str
    call: Call
    concurrency: int  # 0: a blocking in-process call, run sequentially
    runs: list[measure.Measurement] = field(default_factory=list)

    async def run(self, specs: list[workload.RerankRequestSpec], first: bool) -> None:
        warmup = 2 if first else 0
        if self.concurrency == 0:
            self.runs.append(measure.run_sequential(self.system, self.scenario, self.call, specs, warmup))
        else:
            self.runs.append(await measure.run_concurrent(self.system, self.scenario, self.call, specs,
                                                          self.concurrency, warmup))


async def _start_infinity(venv: Path, model_dir: Path, output: Path,
                          stack: contextlib.AsyncExitStack) -> tuple[Any, Any, str]:
    """(system, server, what the summary says of Infinity); system and server are None where it cannot run."""
    reason = infinity.unavailable(venv)
    if reason:
        return None, None, reason
    output.mkdir(parents=True, exist_ok=True)
    server = infinity.InfinityServer(venv, model_dir, output / "infinity.log")
    stack.callback(server.stop)
    try:
        ready_s = await asyncio.to_thread(server.wait_ready)
    except (RuntimeError, TimeoutError) as exc:
        return None, None, f"not measured: {exc}"
    system = infinity.InfinitySystem(server)
    stack.push_async_callback(system.close)
    return system, server, (f"infinity-emb, torch engine, CPU, batch size {infinity.BATCH_SIZE}; "
                            f"ready in {ready_s:.0f} s")


async def _measure_all(args: argparse.Namespace, model_dir: Path, specs: dict[str, list[workload.RerankRequestSpec]],
                       repeat: int, served_as: dict[str, str]) -> tuple[list[measure.Measurement], dict[str, Any]]:
    """Starts every system, then measures them in rounds: each round runs every case once, so that the
    machine's drift between minutes falls on all systems alike; each row reports its median round."""
    extra: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        bf16 = MODEL_BF16 in served_as
        st = SentenceTransformersSystem(model_dir)
        st_scores = st.score(specs["A"][0])
        st_bf16 = SentenceTransformersSystem(model_dir, "bf16") if bf16 else None
        default_precision = served_as[MODEL].split()[1]
        ceilings = [_best_ceiling(model_dir, p, specs["A"][:4]) for p in dict.fromkeys((default_precision, "fp32",
                                                                                       *(["bf16"] if bf16 else [])))]
        ort_fp32 = OnnxRuntimeSystem(args.repository, MODEL_FP32)
        ort_int8 = OnnxRuntimeSystem(args.repository, MODEL_INT8)
        tokens = ort_fp32.token_counts(specs["A"][0])
        config = json.loads((model_dir / "config.json").read_text())
        extra["mean_tokens_per_pair"] = float(tokens.mean())
        extra["flops_per_pair"] = measure.bert_flops_per_pair(
            config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"], tokens)
        extra["padding_fraction"] = {"A": ort_fp32.padding(specs["A"], 1), "B": ort_fp32.padding(specs["B"], 16)}
        peer, peer_server, extra["infinity"] = await _start_infinity(args.infinity_venv, model_dir, args.output,
                                                                     stack)
        triton = EmbeddedTriton(TritonOptions(args.repository))
        url = await triton.start()
        stack.push_async_callback(triton.stop)
        process, target = measure.serve_gateway(["--triton-url", url])
        stack.callback(measure.stop, process)
        await asyncio.to_thread(measure.wait_serving, target, process, 120)
        served = ServedSystem(target, MODEL, f"(export defaults: {served_as[MODEL]})")
        named_systems = {name: ServedSystem(target, name, served_as[name]) for name in NAMED if name in served_as}
        named = list(named_systems.values())
        # The gateway's cost: served against Triton's ensemble called directly, on one model. The exact head's
        # re-scoring is the gateway's (no ensemble does it), so with it the pair is its fast precision alone,
        # whose served row is measured anyway.
        cost_model = _gateway_cost_model(served_as)
        cost = named_systems.get(cost_model, served)
        direct = TritonDirectSystem(url, cost_model, served_as[cost_model])
        # The head users read: fp32, the fast precision alone, the exact head and the defaults, at top_n 10.
        heads = [ServedSystem(target, name, served_as[name], top_n=HEAD)
                 for name in (MODEL_FP32, MODEL_INT8, MODEL_EXACT, MODEL_BF16, MODEL_BF16_EXACT)
                 if name in served_as]
        heads.append(ServedSystem(target, MODEL, f"(export defaults: {served_as[MODEL]})", top_n=HEAD))
        stack.push_async_callback(direct.close)
        for client in (served, *named, *heads):
            stack.push_async_callback(client.close)

        cases = [_Case(st.name, "A", st.score, 0), _Case(ort_fp32.name, "A", ort_fp32.score, 0),
                 _Case(ort_int8.name, "A", ort_int8.score, 0)]
        cases += [_Case(c.name, "A", c.score, 0) for c in ceilings]
        if st_bf16 is not None:
            cases.append(_Case(st_bf16.name, "A", st_bf16.score, 0))
        if peer is not None:
            cases += [_Case(peer.name, scenario, peer.score, n) for scenario, n in (("A", 1), ("B", 16), ("C", 4))]
        cases += [_Case(direct.name, "A", direct.score, 1), _Case(direct.name, "B", direct.score, 16),
                  _Case(served.name, "A", served.score, 1), _Case(served.name, "B", served.score, 16),
                  _Case(served.name, "C", served.score, 4),
                  *(_Case(system.name, "A", system.score, 1) for system in named),
                  *(_Case(system.name, "A", system.score, 1) for system in heads),
                  # Gateway overhead on small requests: 1 query x 10 passages, one at a time.
                  _Case(direct.name, "B-sequential", direct.score, 1),
                  *([_Case(cost.name, "B-sequential", cost.score, 1)] if cost is not served else []),
                  _Case(served.name, "B-sequential", served.score, 1)]
        for round_ in range(repeat):
            logger.info("round %d of %d", round_ + 1, repeat)
            for case in cases:
                case_specs = specs["B"][:64] if case.scenario == "B-sequential" else specs[case.scenario]
                await case.run(case_specs, first=round_ == 0)
        extra["head"] = _head_figures(heads[0], heads[1:])
        extra["gateway_overhead_p50_ms_paired"] = await measure.paired_overhead_ms(
            direct.score, cost.score, specs["B"][:64] * repeat)
        if peer is not None:
            scores = await peer.score(specs["A"][0])  # same model, same scores: the comparison is fair
            extra["infinity_max_abs_diff_to_sentence_transformers"] = float(
                np.max(np.abs(np.asarray(scores) - st_scores)))
            extra["infinity_rss_mib"] = measure.rss_mib(peer_server.pid, with_children=True)
        extra["gateway_rss_mib"] = measure.rss_mib(process.pid)
        extra["triton_rss_mib"] = measure.rss_mib(triton.pid, with_children=True)
    return [measure.median_run(case.runs) for case in cases], extra


def _gateway_cost_model(served_as: dict[str, str]) -> str:
    """The defaults, or where they carry the exact head, the named export of their fast precision alone
    (fp32 where there is none)."""
    alone = served_as[MODEL].removesuffix(" + exact head")
    if alone == served_as[MODEL]:
        return MODEL
    return next((name for name in NAMED if served_as.get(name) == alone), MODEL_FP32)


def _head_figures(fp32: ServedSystem, others: list[ServedSystem]) -> dict[str, dict[str, float]]:
    """Per system at top_n HEAD, over scenario A's requests: the fraction whose top 10 is served fp32's (same
    documents, same order), and the documents re-scored with fp32 per request."""
    figures = {}
    for system in [fp32, *others]:
        same = [system.heads[spec][0] == fp32.heads[spec][0] for spec in fp32.heads if spec in system.heads]
        figures[system.name] = {
            "top10_exact_vs_fp32": sum(same) / len(same) if same else float("nan"),
            "rescored_per_request": (sum(r for _, r in system.heads.values()) / len(system.heads)
                                     if system.heads else 0.0)}
    return figures


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossrank_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workload, under two minutes")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    parser.add_argument("--repository", type=Path, default=Path("bench/.repository"))
    parser.add_argument("--cache", type=Path, default=Path("bench/.cache"))
    parser.add_argument("--infinity-venv", type=Path, default=Path(".venv-infinity"),
                        help="virtual environment with infinity-emb (make bench builds it)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="rounds over every system; each row reports its median round (default: 3 full, "
                             "1 quick)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    measure.configure_logging()

    sizes = SIZES["quick" if args.quick else "full"]
    specs = {"A": workload.requests(sizes["A"], 100, seed=1), "B": workload.requests(sizes["B"], 10, seed=2),
             "C": workload.requests(sizes["C"], 100, seed=3)}
    flags = cpu_flags()
    model_dir, served_as = _prepare(args.repository, args.cache, has_bf16(flags))

    logger.info("cold start")
    cold = cold_start(args.repository)
    logger.info("all systems, %d round(s)", repeat)
    results, extra = asyncio.run(_measure_all(args, model_dir, specs, repeat, served_as))
    logger.info("shared-prefix reuse (tiny causal reranker, in-process torch-python encoder)")
    extra["prefix_reuse"] = prefix_reuse.measure(args.cache, rounds=repeat)
    summary: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": {"cpus": len(os.sched_getaffinity(0)), "cpu_model": _cpu_model(),
                    "cpu_flags": sorted(f for f in flags if f in (*BF16_FLAGS, *INT8_FLAGS, "avx512f", "avx2")),
                    "platform": platform.platform(), "python": platform.python_version()},
        "model": "MiniLM-L-6 stand-in (all-MiniLM-L6-v2 backbone, one-logit head fitted on a synthetic task)",
        "served_as": served_as,
        "matmul_peak_gflops": measure.matmul_peak_gflops(),
        "matmul_peak_gflops_bf16": measure.torch_matmul_peak_gflops("bf16") if has_bf16(flags) else None,
        "cold_start_s": cold,
        "repeat": repeat,
        **extra,
        "measurements": [m.as_dict() for m in results],
    }
    report.write(summary, args.output)
    print(report.markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
