"""Infinity (`infinity-emb`, torch engine) as a peer in the benchmark: started from its own virtual
environment (`make bench` builds `.venv-infinity` from requirements/infinity.txt, apart from crossrank's
pins), on the same model directory, called over its `/rerank` HTTP API with aiohttp.

Where it did not install or does not start, `unavailable()` says why, and the benchmark reports that
instead of a figure.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.embedded_triton.launcher import free_port
from crossrank_bench.workload import RerankRequestSpec

STARTUP_TIMEOUT_S = 300
BATCH_SIZE = 32  # Infinity's default dynamic batch; sentence-transformers predicts in 32s too


def executable(venv: Path) -> Path:
    return venv / "bin" / "infinity_emb"


def unavailable(venv: Path) -> str | None:
    """Why Infinity cannot run from `venv`, or None."""
    if executable(venv).exists():
        return None
    log = venv / "install.log"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    return (f"not measured: infinity-emb is not installed in {venv} (`make bench` installs it from "
            f"requirements/infinity.txt)" + (f"; the install said: {' / '.join(tail)}" if tail else ""))


class InfinityServer:
    """`infinity_emb v2` as a child process on a free local port."""

    def __init__(self, venv: Path, model_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.model_id = str(model_dir)
        self._log = log.open("wb")
        self._process = subprocess.Popen(
            [str(executable(venv)), "v2", "--model-id", self.model_id, "--engine", "torch", "--device", "cpu",
             "--batch-size", str(BATCH_SIZE), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self) -> float:
        import urllib.error
        import urllib.request

        started = time.perf_counter()
        while time.perf_counter() - started < STARTUP_TIMEOUT_S:
            if self._process.poll() is not None:
                raise RuntimeError(f"infinity_emb exited with {self._process.returncode}; see {self._log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"infinity_emb was not ready after {STARTUP_TIMEOUT_S} s; see {self._log.name}")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


class InfinitySystem:
    """Infinity's `/rerank`: one request per query, scores (sigmoid, as sentence-transformers' default) in
    the order given."""

    name = "infinity (torch)"

    def __init__(self, server: InfinityServer) -> None:
        import aiohttp

        self._url = f"http://127.0.0.1:{server.port}/rerank"
        self._model = server.model_id
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def score(self, spec: RerankRequestSpec) -> Any:
        body = {"model": self._model, "query": spec.query, "documents": list(spec.documents),
                "raw_scores": False, "return_documents": False}
        async with self._session.post(self._url, json=body) as response:
            response.raise_for_status()
            results = (await response.json())["results"]
        scores = np.empty(len(results), dtype=np.float32)
        for r in results:
            scores[r["index"]] = r["relevance_score"]
        return scores

    async def close(self) -> None:
        await self._session.close()
