"""Turns benchmark measurements into ratios, a markdown table, JSON and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ST, ST_BF16, ORT, DIRECT, INFINITY = ("sentence-transformers", "sentence-transformers bf16",
                                      "onnxruntime in-process", "triton ensemble direct", "infinity (torch)")
SERVED = "crossrank served (export defaults"  # a prefix: the name carries the engine and precision chosen
CEILING = "pytorch in-process"


def _find(summary: dict[str, Any], system: str, scenario: str) -> dict[str, Any] | None:
    """The measurement of `system` (a full name, or a prefix ending in the precision) on `scenario`."""
    for m in summary["measurements"]:
        if m["scenario"] == scenario and (m["system"] == system or m["system"].startswith(system + " ")
                                          or (system == SERVED and m["system"].startswith(SERVED))):
            return m
    return None


def _beside_direct(summary: dict[str, Any], scenario: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(served, Triton direct) on `scenario` for the one export both called: the direct row names its
    "engine precision" in parentheses, the defaults' row or a named precision's row carries the same."""
    direct = _find(summary, DIRECT, scenario)
    label = direct["system"].removeprefix(DIRECT).strip(" ()") if direct else ""
    if not label:
        return _find(summary, SERVED, scenario), direct
    names = (f"{SERVED}: {label})", f"crossrank served {label}")
    served = next((m for name in names for m in summary["measurements"]
                   if m["scenario"] == scenario and m["system"] == name), None)
    return served, direct


def _ratio(out: dict[str, float], key: str, top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> None:
    if top and bottom:
        out[key] = top["pairs_per_s"] / bottom["pairs_per_s"]


def derived(summary: dict[str, Any]) -> dict[str, float]:
    """Ratios the targets are stated in, all from measurements of this one run."""
    out: dict[str, float] = {}
    served_as = summary.get("served_as", {})
    default_precision = next((v.split()[1] for k, v in served_as.items() if k.endswith("defaults")), "fp32")
    st, st_bf16, ort = (_find(summary, s, "A") for s in (ST, ST_BF16, ORT))
    served_a, served_b = _find(summary, SERVED, "A"), _find(summary, SERVED, "B")
    ceiling = _find(summary, f"{CEILING} {default_precision},", "A")
    # The best in-process engine at the precision served (int8 and bf16 rows that do not agree with fp32
    # are reported beside, not as the bar).
    def precision_of(system: str) -> str:
        return next((p for p in ("int8", "bf16", "fp16") if p in system.replace(",", " ").split()), "fp32")

    in_process = [m for m in summary["measurements"] if m["scenario"] == "A" and not m["system"].startswith(
        ("crossrank served", DIRECT, INFINITY)) and precision_of(m["system"]) == default_precision]
    best = max(in_process, key=lambda m: m["pairs_per_s"], default=None)
    _ratio(out, "A_served_over_sentence_transformers_fp32", served_a, st)
    _ratio(out, "A_served_over_sentence_transformers_bf16", served_a, st_bf16)
    _ratio(out, f"A_served_over_pytorch_ceiling_{default_precision}", served_a, ceiling)
    _ratio(out, "A_served_over_onnxruntime_in_process_fp32", served_a, ort)
    _ratio(out, f"A_served_over_best_in_process_{default_precision}", served_a, best)
    _ratio(out, "A_onnxruntime_over_sentence_transformers", ort, st)
    _ratio(out, "A_sentence_transformers_bf16_over_fp32", st_bf16, st)
    for label in ("onnx-python int8", "torch-python bf16"):
        _ratio(out, f"A_served_{label.split()[1]}_over_sentence_transformers_fp32",
               _find(summary, f"crossrank served {label}", "A"), st)
    _ratio(out, "A_served_bf16_over_sentence_transformers_bf16",
           _find(summary, "crossrank served torch-python bf16", "A"), st_bf16)
    for scenario in ("A", "B", "C"):
        _ratio(out, f"{scenario}_served_over_infinity", _find(summary, SERVED, scenario),
               _find(summary, INFINITY, scenario))
    _ratio(out, "B_served_over_A_served", served_b, served_a)
    for scenario in ("A", "B-sequential"):
        served, direct = _beside_direct(summary, scenario)
        if served and direct:
            out[f"gateway_overhead_p50_ms_{scenario}"] = served["p50_ms"] - direct["p50_ms"]
            if scenario == "A":  # the target: at most 3% of the ensemble's throughput
                out["A_gateway_cost_share_of_direct_throughput"] = 1 - served["pairs_per_s"] / direct["pairs_per_s"]
    if "gateway_overhead_p50_ms_paired" in summary:
        out["gateway_overhead_p50_ms_paired_1x10"] = summary["gateway_overhead_p50_ms_paired"]
    peak = summary.get("matmul_peak_gflops_bf16") if default_precision == "bf16" else summary["matmul_peak_gflops"]
    if served_a and peak:
        out[f"A_served_fraction_of_{default_precision}_matmul_peak"] = (
            summary["flops_per_pair"] * served_a["pairs_per_s"] / 1e9 / peak)
    return out


def markdown(summary: dict[str, Any]) -> str:
    machine = summary["machine"]
    lines = [f"Model: {summary['model']}; {summary['mean_tokens_per_pair']:.0f} tokens/pair on average; "
             f"{machine['cpus']} CPUs ({machine.get('cpu_model', '?')}; flags: "
             f"{', '.join(machine.get('cpu_flags', [])) or 'none of note'}); mode {summary['mode']}; each row the "
             f"median of {summary.get('repeat', 1)} interleaved round(s).",
             "Exports served: " + ", ".join(f"{k} = {v}" for k, v in summary.get("served_as", {}).items()), "",
             "| scenario | system | requests | pairs/s | p50 ms | p95 ms | p99 ms |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for m in summary["measurements"]:
        lines.append(f"| {m['scenario']} | {m['system']} | {m['requests']} | {m['pairs_per_s']:.1f} | "
                     f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} | {m['p99_ms']:.1f} |")
    lines += ["", "| figure | value |", "|---|---:|"]
    for key, value in derived(summary).items():
        lines.append(f"| {key} | {value:.3f} |")
    lines += [f"| cold start (command to SERVING, export reused), s | {summary['cold_start_s']:.1f} |",
              f"| gateway RSS, MiB | {summary.get('gateway_rss_mib', 0):.0f} |",
              f"| Triton RSS (server + python-backend stubs), MiB | {summary.get('triton_rss_mib', 0):.0f} |",
              f"| measured fp32 matmul peak, GFLOP/s | {summary['matmul_peak_gflops']:.0f} |",
              f"| measured bf16 matmul peak (PyTorch), GFLOP/s | {summary.get('matmul_peak_gflops_bf16') or 0:.0f} |",
              *(f"| padding share, scenario {scenario}: crossrank / 32-pair batches in order | "
                f"{shares['crossrank']:.3f} / {shares['batches_of_32_in_order']:.3f} |"
                for scenario, shares in summary.get("padding_fraction", {}).items()),
              "", f"Infinity: {summary['infinity']}"]
    prefix = summary.get("prefix_reuse") or {}
    for name, reuse in prefix.get("in_process", {}).items():
        served = prefix.get("served", {}).get(name)
        lines.append(f"Shared-prefix reuse, {name} documents (small causal reranker, Qwen3-Reranker layout, "
                     f"{reuse['documents']} documents, prefix {reuse['prefix_tokens']} of "
                     f"{reuse['pair_tokens_mean']:.0f} tokens a pair): in-process torch-python encoder "
                     f"{reuse['pairs_per_s_reuse']:.0f} pairs/s with reuse, {reuse['pairs_per_s_full']:.0f} without: "
                     f"{reuse['speedup']:.2f}x" + (
                         f"; served (gateway and Triton, one request at a time) {served['pairs_per_s_reuse']:.0f} "
                         f"/ {served['pairs_per_s_full']:.0f}: {served['speedup']:.2f}x" if served else "")
                     + f"; scores differ by at most "
                       f"{max(r['max_score_difference'] for r in (reuse, served or reuse)):.1e}.")
    if summary.get("head"):
        lines += ["", "| scenario A at top_n 10: system | top 10 = served fp32's (share of requests) | "
                      "re-scored with fp32 per request |", "|---|---:|---:|"]
        lines += [f"| {name} | {figures['top10_exact_vs_fp32']:.3f} | {figures['rescored_per_request']:.1f} |"
                  for name, figures in summary["head"].items()]
    if "infinity_max_abs_diff_to_sentence_transformers" in summary:
        lines.append(f"Infinity's raw scores differ from sentence-transformers' by at most "
                     f"{summary['infinity_max_abs_diff_to_sentence_transformers']:.1e} (same model), RSS "
                     f"{summary.get('infinity_rss_mib', 0):.0f} MiB.")
    return "\n".join(lines) + "\n"


def _chart(summary: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [m for m in summary["measurements"] if m["scenario"] in ("A", "B", "C")]
    labels = [f"{m['scenario']}: {m['system']}" for m in rows]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1))
    ax.barh(labels, [m["pairs_per_s"] for m in rows], color="#4477aa")
    ax.invert_yaxis()
    ax.set_xlabel("pairs/s (higher is better)")
    ax.set_title("crossrank benchmark, MiniLM-L-6 shape, same machine, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(summary: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    summary = {**summary, "derived": derived(summary)}
    (output / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output / "results.md").write_text(markdown(summary))
    _chart(summary, output / "results.png")
