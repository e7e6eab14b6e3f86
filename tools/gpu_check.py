"""The GPU check for the torch-python engine: fp16 through the real Triton and the gateway, parity and speed
against sentence-transformers fp32 on the same card. Run by tools/gpu_check.sh on a machine with an NVIDIA
GPU; writes gpu_check.json to --out.

The model has the MiniLM-L-6 cross-encoder's shape and tokenizer (config and tokenizer files given with
--shape-dir) with seeded random weights: the same cost as cross-encoder/ms-marco-MiniLM-L-6-v2.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "client")]


def build_model(shape_dir: Path, target: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(shape_dir, num_labels=1)
    BertForSequenceClassification(config).eval().save_pretrained(target)
    AutoTokenizer.from_pretrained(shape_dir).save_pretrained(target)
    return target


def wait_serving(target: str, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("crossrank serve exited")
            try:
                if health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    raise TimeoutError("not SERVING")


async def served_throughput(target: str, specs: list, concurrency: int) -> dict:  # type: ignore[type-arg]
    from crossrank_client import AsyncCrossEncoderClient

    latencies: list[float] = []
    queue = list(specs)
    async with AsyncCrossEncoderClient(target, timeout=300) as client:
        for spec in specs[:4]:
            await client.rerank(spec.query, spec.documents, model="minilm-fp16")

        async def worker() -> None:
            while queue:
                spec = queue.pop()
                t0 = time.perf_counter()
                await client.rerank(spec.query, spec.documents, model="minilm-fp16")
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    pairs = sum(len(s.documents) for s in specs)
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(specs), "pairs_per_s": pairs / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-check"))
    args = parser.parse_args()
    import torch
    from sentence_transformers import CrossEncoder

    from crossrank.bench import workload
    from crossrank.export.exporter import ExportOptions, export
    from crossrank.triton_launcher import free_port

    result: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    model_dir = build_model(args.shape_dir, args.work / "minilm")
    repo = args.work / "repo"
    t0 = time.perf_counter()
    report = export(ExportOptions(source=str(model_dir), name="minilm-fp16", repository=repo, engine="torch-python",
                                  precision="fp16", max_batch_size=1024, tokenizer_instances=8))
    result["export_s"] = time.perf_counter() - t0
    result["export_agreement"] = report.agreement.__dict__ if report.agreement else None

    port = free_port()
    log = (args.out / "serve.log").open("w")
    # The server may need another interpreter than this script: Triton's python backend needs numpy < 2.
    python = os.environ.get("CROSSRANK_SERVE_PYTHON", sys.executable)
    process = subprocess.Popen([python, "-m", "crossrank.cli", "serve", "--repository", str(repo),
                                "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "-1",
                                "--http-port", "-1"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "CROSSRANK_MAX_IN_FLIGHT": "256", "CROSSRANK_MAX_QUEUE": "1024",
                                    "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "client"),
                                                                   os.environ.get("PYTHONPATH", "")])})
    target = f"127.0.0.1:{port}"
    try:
        wait_serving(target, process)
        from crossrank_client import CrossEncoderClient

        reference = CrossEncoder(str(model_dir), device="cuda")
        lists = workload.requests(8, 100, seed=7)
        diffs, overlaps, same_order = [], [], []
        with CrossEncoderClient(target, timeout=300) as client:
            for spec in lists:
                ref = np.asarray(reference.predict([(spec.query, d) for d in spec.documents], batch_size=128))
                ranked = client.rerank(spec.query, spec.documents, model="minilm-fp16")
                got = np.empty(len(spec.documents))
                for r in ranked:
                    got[r.index] = r.score
                diffs.append(float(np.max(np.abs(got - ref))))
                top_ref, top_got = list(np.argsort(-ref)[:10]), [r.index for r in ranked][:10]
                overlaps.append(len(set(top_ref) & set(top_got)) / 10)
                same_order.append(top_ref == top_got)
        result["parity"] = {"max_abs_diff_sigmoid": max(diffs), "top10_overlap_mean": float(np.mean(overlaps)),
                            "top10_same_order_lists": int(sum(same_order)), "lists": len(lists)}

        specs = workload.requests(600, 100, seed=3)
        pairs = [(s.query, d) for s in specs[:200] for d in s.documents]
        st = {}
        for batch in (128, 512):
            reference.predict(pairs[:2048], batch_size=batch)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            reference.predict(pairs, batch_size=batch)
            torch.cuda.synchronize()
            st[f"batch_{batch}"] = len(pairs) / (time.perf_counter() - t0)
        result["sentence_transformers_fp32_pairs_per_s"] = st
        result["served_fp16"] = [asyncio.run(served_throughput(target, specs, c)) for c in (16, 64)]
        best_served = max(r["pairs_per_s"] for r in result["served_fp16"])
        result["served_over_st_best"] = best_served / max(st.values())
    finally:
        process.terminate()
        process.wait(120)
        log.close()
        (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
