"""The GPU check for the torch-python engine: fp16 through the real Triton and the gateway, parity and speed
against sentence-transformers fp32 on the same card. Run by tools/gpu_check.sh on a machine with an NVIDIA
GPU; writes gpu_check.json to --out after every stage, so a run cut short still reports what it measured.

The model has the MiniLM-L-6 cross-encoder's shape and tokenizer (config and tokenizer files given with
--shape-dir) with seeded random weights: the same cost as cross-encoder/ms-marco-MiniLM-L-6-v2.

Two interpreters take part, because Triton's python backend needs numpy < 2 while the machine's
sentence-transformers needs numpy 2: `build` (model, export, in-process ceilings) runs on the serving
interpreter (CROSSRANK_SERVE_PYTHON), as does the server; `main` (the reference, the client load) runs on
the machine's own Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "client")]
MODEL = "minilm"


# fp16 served against sentence-transformers fp32 on the same card (sigmoid scores, 8 lists of 100 passages).
PARITY_MAX_DIFF = 1e-2
PARITY_MIN_TOP10 = 0.9

def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- build stage: the serving interpreter --------------------------------------------------------------

def build(args: argparse.Namespace) -> int:
    import torch
    from crossrank_bench import workload
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from crossrank.export.exporter import ExportOptions, export
    from crossrank.triton_models.pair_tokenizer import PairTokenizer
    from crossrank.triton_models.torch_encoder import TorchEncoder

    result: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    torch.manual_seed(0)
    model_dir = args.work / "hf"
    config = BertConfig.from_pretrained(args.shape_dir, num_labels=1)
    BertForSequenceClassification(config).eval().save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(args.shape_dir).save_pretrained(model_dir)
    log("model built")
    started = time.perf_counter()
    report = export(ExportOptions(source=str(model_dir), name=MODEL, repository=args.work / "repo",
                                  engine="torch-python", precision=args.precision, max_batch_size=1024,
                                  tokenizer_instances=args.tokenizer_instances,
                                  encoder_instances=args.encoder_instances))
    result["export_s"] = time.perf_counter() - started
    result["export_max_abs_logit_diff"] = report.max_abs_diff
    result["export_agreement"] = report.agreement.__dict__ if report.agreement else None
    log(f"exported: max logit diff {report.max_abs_diff:.2e}")

    # In-process ceilings on the same workload: one tokenizer thread, and the encoder on pre-tokenized input.
    tokenizer = PairTokenizer.from_directory(args.work / "repo" / f"{MODEL}_tokenizer" / "1")
    specs = workload.requests(args.ceiling_requests, 100, seed=3)
    total = 100 * len(specs)
    started = time.perf_counter()
    batches = [tokenizer.encode([s.query] * len(s.documents), list(s.documents)) for s in specs]
    result["tokenizer_one_thread_pairs_per_s"] = total / (time.perf_counter() - started)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    encoder = TorchEncoder(str(model_dir), names, precision=args.precision)
    feeds = [{n: b.tensors[n] for n in names} for b in batches]
    for group in (10, 50):
        group = min(group, len(feeds))  # 10 requests of 100 pairs = 1000 pairs per call; Triton merges like this
        encoder.score(feeds[:group])
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(0, len(feeds), group):
            encoder.score(feeds[i:i + group])
        result[f"encoder_pretokenized_pairs_per_s_{group * 100}"] = total / (time.perf_counter() - started)
    log(f"ceilings: {json.dumps({k: v for k, v in result.items() if 'per_s' in k})}")
    if torch.cuda.is_available():  # where the encoder's time goes: one call of 10 requests x 100 pairs
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            encoder.score(feeds[:10])
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=50)
        (args.out / "encoder_profile.txt").write_text(table + "\n\n" + prof.key_averages().table(
            sort_by="self_cuda_time_total", row_limit=15, max_name_column_width=50))
    (args.work / "build.json").write_text(json.dumps(result, indent=2))
    return 0


# --- main stage: the machine's own Python ---------------------------------------------------------------

async def served_throughput(target: str, specs: list[Any], concurrency: int) -> dict[str, Any]:
    from crossrank_bench.measure import run_concurrent
    from crossrank_client import AsyncCrossEncoderClient

    async with AsyncCrossEncoderClient(target, timeout=300) as client:
        async def rerank(spec: Any) -> Any:
            return await client.rerank(spec.query, spec.documents, model=MODEL)

        m = await run_concurrent("crossrank served", "GPU", rerank, specs, concurrency, warmup=concurrency)
    return {"concurrency": concurrency, "requests": m.requests, "documents_per_request": len(specs[0].documents),
            "pairs_per_s": m.pairs_per_s, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms}


def _client_process(target: str, specs: list[Any], concurrency: int) -> dict[str, Any]:
    sys.path[:0] = [str(ROOT), str(ROOT / "client")]
    return asyncio.run(served_throughput(target, specs, concurrency))


def served_from_processes(target: str, specs: list[Any], concurrency: int, processes: int) -> dict[str, Any]:
    """The same load from several client processes, to tell a client-bound figure from a server-bound one."""
    import multiprocessing

    if processes == 1:
        return {**asyncio.run(served_throughput(target, specs, concurrency)), "client_processes": 1}
    shares = [specs[i::processes] for i in range(processes)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.starmap(_client_process, [(target, share, concurrency // processes) for share in shares])
    seconds = time.perf_counter() - started  # includes each process's start and warm-up: a lower bound
    slowest = max(p["requests"] * p["documents_per_request"] / p["pairs_per_s"] for p in parts)
    return {"concurrency": concurrency, "client_processes": processes, "requests": len(specs),
            "pairs_per_s": sum(len(s.documents) for s in specs) / slowest, "wall_pairs_per_s_lower_bound":
            sum(len(s.documents) for s in specs) / seconds,
            "p50_ms_worst_process": max(p["p50_ms"] for p in parts),
            "p99_ms_worst_process": max(p["p99_ms"] for p in parts)}


def main(args: argparse.Namespace) -> int:
    import torch
    from crossrank_bench import workload
    from crossrank_bench.measure import wait_serving

    from crossrank.embedded_triton.launcher import free_port

    out: Path = args.out
    result: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
                              "reference_torch": torch.__version__, "precision": args.precision,
                              "tokenizer_instances": args.tokenizer_instances,
                              "encoder_instances": args.encoder_instances}

    def save() -> None:
        (out / "gpu_check.json").write_text(json.dumps(result, indent=2))

    python = os.environ.get("CROSSRANK_SERVE_PYTHON", sys.executable)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "client")])}
    started = time.perf_counter()
    # The serving interpreter finds its packages through its own paths, not this interpreter's PYTHONPATH.
    build_cmd = [python, __file__, "build", "--shape-dir", str(args.shape_dir), "--work", str(args.work),
                 "--precision", args.precision, "--tokenizer-instances", str(args.tokenizer_instances),
                 "--ceiling-requests", str(args.ceiling_requests), "--encoder-instances", str(args.encoder_instances),
                 "--out", str(args.out)]
    done = subprocess.run(build_cmd, env=env, cwd=ROOT)
    result["build_s"] = time.perf_counter() - started
    if done.returncode != 0:
        result["error"] = f"build stage exited {done.returncode}"
        save()
        return 1
    result["build"] = json.loads((args.work / "build.json").read_text())
    save()

    port = free_port()
    serve_log = (out / "serve.log").open("w")
    process = subprocess.Popen([python, "-m", "crossrank.cli", "serve", "--repository", str(args.work / "repo"),
                                "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1",
                                "--http-port", "-1"], cwd=ROOT, stdout=serve_log, stderr=subprocess.STDOUT,
                               env={**env, "CROSSRANK_MAX_IN_FLIGHT": "512", "CROSSRANK_MAX_QUEUE": "2048"})
    target = f"127.0.0.1:{port}"
    try:
        result["serve_ready_s"] = wait_serving(target, process, args.serve_timeout)
        log(f"serving after {result['serve_ready_s']:.1f} s")
        from crossrank_client import CrossEncoderClient
        from sentence_transformers import CrossEncoder

        device = "cuda" if torch.cuda.is_available() else "cpu"
        reference = CrossEncoder(str(args.work / "hf"), device=device)
        lists = workload.requests(8, 100, seed=7)
        diffs, overlaps, same_order = [], [], []
        with CrossEncoderClient(target, timeout=300) as client:
            for spec in lists:
                ref = np.asarray(reference.predict([(spec.query, d) for d in spec.documents], batch_size=128))
                ranked = client.rerank(spec.query, spec.documents, model=MODEL)
                got = np.empty(len(spec.documents))
                for r in ranked:
                    got[r.index] = r.score
                diffs.append(float(np.max(np.abs(got - ref))))
                top_ref, top_got = [int(i) for i in np.argsort(-ref)[:10]], [r.index for r in ranked][:10]
                overlaps.append(len(set(top_ref) & set(top_got)) / 10)
                same_order.append(top_ref == top_got)
        result["parity"] = {"max_abs_diff_sigmoid": max(diffs), "top10_overlap_mean": float(np.mean(overlaps)),
                            "top10_same_order_lists": int(sum(same_order)), "lists": len(lists),
                            "bar": {"max_abs_diff_sigmoid": PARITY_MAX_DIFF, "top10_overlap_mean": PARITY_MIN_TOP10}}
        log(f"parity: {result['parity']}")
        # Asserted where the check runs on a GPU: served fp16 must score like sentence-transformers fp32.
        if device == "cuda" and not (max(diffs) <= PARITY_MAX_DIFF
                                     and float(np.mean(overlaps)) >= PARITY_MIN_TOP10):
            result["failed"] = f"fp16 parity below the bar: {result['parity']}"
            log(result["failed"])
        save()

        specs = workload.requests(args.requests, 100, seed=3)
        pairs = [(s.query, d) for s in specs[:200] for d in s.documents]
        st: dict[str, float] = {}
        for batch in (128, 512):
            reference.predict(pairs[:2048], batch_size=batch)
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            reference.predict(pairs, batch_size=batch)
            if device == "cuda":
                torch.cuda.synchronize()
            st[f"batch_{batch}"] = len(pairs) / (time.perf_counter() - t0)
        result["sentence_transformers_fp32_pairs_per_s"] = st
        log(f"sentence-transformers: {st}")
        save()
        result["served"] = []
        for concurrency in args.concurrency:
            for processes in args.client_processes:
                result["served"].append(served_from_processes(target, specs, concurrency, processes))
                log(f"served: {result['served'][-1]}")
                save()
        best = max(r["pairs_per_s"] for r in result["served"])
        result["served_over_sentence_transformers_best"] = best / max(st.values())
    except Exception as exc:  # the partial result is still worth having
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(result["error"])
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        serve_log.close()
        save()
    print(json.dumps(result, indent=2))
    return 1 if "error" in result or "failed" in result else 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", nargs="?", default="main", choices=["main", "build"])
    parser.add_argument("--shape-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu-out"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-check"))
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--tokenizer-instances", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1200, help="rerank requests of 100 documents")
    parser.add_argument("--encoder-instances", type=int, default=2)
    parser.add_argument("--ceiling-requests", type=int, default=100, help="for the in-process ceilings")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--client-processes", type=int, nargs="+", default=[1])
    parser.add_argument("--serve-timeout", type=float, default=300)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    arguments.work.mkdir(parents=True, exist_ok=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    raise SystemExit(build(arguments) if arguments.stage == "build" else main(arguments))
