"""Turns benchmark measurements into ratios, a markdown table, JSON and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ST, ORT, SERVED, DIRECT, INFINITY = ("sentence-transformers", "onnxruntime in-process", "crossrank served",
                                     "triton ensemble direct", "infinity (torch)")


def _find(summary: dict[str, Any], system: str, scenario: str) -> dict[str, Any] | None:
    for m in summary["measurements"]:
        if m["system"] == system and m["scenario"] == scenario:
            return m
    return None


def derived(summary: dict[str, Any]) -> dict[str, float]:
    """Ratios the targets are stated in, all from measurements of this one run."""
    out: dict[str, float] = {}
    st, ort, served_a = (_find(summary, s, "A") for s in (ST, ORT, SERVED))
    served_b = _find(summary, SERVED, "B")
    if served_a and ort:
        out["A_served_over_onnxruntime"] = served_a["pairs_per_s"] / ort["pairs_per_s"]
    if served_a and st:
        out["A_served_over_sentence_transformers"] = served_a["pairs_per_s"] / st["pairs_per_s"]
    if ort and st:
        out["A_onnxruntime_over_sentence_transformers"] = ort["pairs_per_s"] / st["pairs_per_s"]
    served_int8 = _find(summary, SERVED + " int8", "A")
    if served_int8 and st:
        out["A_served_int8_over_sentence_transformers"] = served_int8["pairs_per_s"] / st["pairs_per_s"]
    for scenario in ("A", "B", "C"):
        served, peer = _find(summary, SERVED, scenario), _find(summary, INFINITY, scenario)
        if served and peer:
            out[f"{scenario}_served_over_infinity"] = served["pairs_per_s"] / peer["pairs_per_s"]
    if ort and (peer_a := _find(summary, INFINITY, "A")):
        out["A_onnxruntime_over_infinity"] = ort["pairs_per_s"] / peer_a["pairs_per_s"]
    if served_a and served_b:
        out["B_served_over_A_served"] = served_b["pairs_per_s"] / served_a["pairs_per_s"]
    for scenario in ("A", "B-sequential"):
        served, direct = _find(summary, SERVED, scenario), _find(summary, DIRECT, scenario)
        if served and direct:
            out[f"gateway_overhead_p50_ms_{scenario}"] = served["p50_ms"] - direct["p50_ms"]
    if "gateway_overhead_p50_ms_paired" in summary:
        out["gateway_overhead_p50_ms_paired_1x10"] = summary["gateway_overhead_p50_ms_paired"]
    if served_a:
        achieved = summary["flops_per_pair"] * served_a["pairs_per_s"] / 1e9
        out["A_served_fraction_of_fp32_peak"] = achieved / summary["matmul_peak_gflops"]
    return out


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"Model: {summary['model']}; {summary['mean_tokens_per_pair']:.0f} tokens/pair on average; "
             f"{summary['machine']['cpus']} CPUs; mode {summary['mode']}; each row the median of "
             f"{summary.get('repeat', 1)} interleaved round(s).", "",
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
              *(f"| padding share, scenario {scenario}: crossrank / 32-pair batches in order | "
                f"{shares['crossrank']:.3f} / {shares['batches_of_32_in_order']:.3f} |"
                for scenario, shares in summary.get("padding_fraction", {}).items()),
              "", f"Infinity: {summary['infinity']}"]
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
