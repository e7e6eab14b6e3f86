"""Soak (`make soak`, not part of `make test`): 32 concurrent clients send mixed valid and invalid requests
for CROSSRANK_SOAK_SECONDS (default 180) to the real gateway and Triton. Every valid response is checked
against sentence-transformers scores, every invalid one for its expected code; gateway and Triton memory
must grow less than 10% after warm-up."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest
from crossrank_client import AsyncCrossEncoderClient, CrossrankClientError
from sentence_transformers import CrossEncoder

from crossrank.export.exporter import ExportOptions, export
from tests.e2e.server_process import ServerProcess, children, rss_mib
from tests.model_builders import pairs_with_long_documents

CONCURRENCY = 32
TOLERANCE = 1e-4


def test_soak(tmp_path: Path, tiny_bert_dir: Path) -> None:
    duration = float(os.environ.get("CROSSRANK_SOAK_SECONDS", "180"))
    repo = tmp_path / "repo"
    export(ExportOptions(source=str(tiny_bert_dir), name="tiny-bert", repository=repo))
    rng = random.Random(5)
    pairs = pairs_with_long_documents(400, seed=9, long_words=200)
    model = CrossEncoder(str(tiny_bert_dir), device="cpu")
    pool = []  # (query, documents, reference sigmoid scores)
    for _ in range(40):
        chosen = rng.sample(range(len(pairs)), rng.randint(1, 30))
        query, docs = pairs[chosen[0]][0], [pairs[j][1] for j in chosen]
        pool.append((query, docs, np.asarray(model.predict([(query, d) for d in docs]))))
    invalid = [("", ["d"], "INVALID_ARGUMENT"), ("q", [], "INVALID_ARGUMENT"), ("q", ["ok", ""], "INVALID_ARGUMENT")]

    server = ServerProcess(["--repository", str(repo)], log=tmp_path / "soak.log")
    counts = {"ok": 0, "invalid": 0, "unexpected": 0}
    samples: list[tuple[float, float]] = []

    async def client_loop(deadline: float, seed: int) -> None:
        local = random.Random(seed)
        async with AsyncCrossEncoderClient(server.target, timeout=60) as client:
            while time.monotonic() < deadline:
                if local.random() < 0.2:
                    query, docs, code = local.choice(invalid)
                    try:
                        await client.rerank(query, docs)
                        counts["unexpected"] += 1
                    except CrossrankClientError as exc:
                        counts["invalid" if exc.code.name == code else "unexpected"] += 1
                    continue
                query, docs, expected = local.choice(pool)
                try:
                    response = await client.rerank(query, docs)
                except CrossrankClientError:
                    counts["unexpected"] += 1
                    continue
                got = np.empty(len(docs))
                for r in response:
                    got[r.index] = r.score
                ok = len(response) == len(docs) and np.max(np.abs(got - expected)) <= TOLERANCE
                counts["ok" if ok else "unexpected"] += 1

    def memory() -> tuple[float, float]:
        return rss_mib([server.process.pid]), rss_mib(children(server.process.pid))

    async def run() -> None:
        started = time.monotonic()
        deadline = started + duration
        tasks = [asyncio.create_task(client_loop(deadline, i)) for i in range(CONCURRENCY)]
        while time.monotonic() < deadline:
            await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            samples.append(memory())
        await asyncio.gather(*tasks)

    try:
        server.wait_serving()
        asyncio.run(run())
    finally:
        assert server.terminate() == 0
    warm = samples[max(1, len(samples) // 5)]
    final = samples[-1]
    growth = [(f - w) / w for f, w in zip(final, warm)]
    print(f"\nsoak {duration:.0f} s at concurrency {CONCURRENCY}: {counts['ok']} valid responses checked, "
          f"{counts['invalid']} invalid requests refused as expected, {counts['unexpected']} unexpected; "
          f"RSS gateway {warm[0]:.0f} -> {final[0]:.0f} MiB ({growth[0]:+.1%}), "
          f"Triton {warm[1]:.0f} -> {final[1]:.0f} MiB ({growth[1]:+.1%})")
    assert counts["unexpected"] == 0 and counts["ok"] > 0 and counts["invalid"] > 0
    assert max(growth) < 0.10


if __name__ == "__main__":
    pytest.main([__file__, "-s"])
