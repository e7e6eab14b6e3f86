"""Shared-prefix reuse for causal-LM rerankers on a small random Qwen3 reranker (4 layers, width 256) exported
in Qwen3-Reranker's layout (system text, instruction and query: a prefix of over 64 tokens), one query x 100
documents, for short documents (10-25 words) and longer ones (20-70 words): the gain follows the prefix's share
of each pair. Measured twice: in-process through the `torch-python` encoder that Triton runs, and served (the
gateway and Triton, one request at a time) with two exports of the model, one with `--no-prefix-reuse`. The
model comes from the test suite's builders (a tokenizer trained there, no hub)."""

from __future__ import annotations

import importlib
import random
import time
from pathlib import Path
from typing import Any

from crossrank_bench import measure as timing

QUERY = "which river runs through the capital of france and what is the city known for"
DOCUMENT_WORDS = {"short": (10, 25), "long": (20, 70)}
MODELS = {"reuse": "q-reuse", "full": "q-full"}  # served names: the same model exported with reuse on and off


def measure(cache: Path, rounds: int = 3) -> dict[str, dict[str, dict[str, Any]]]:
    """For each way (in-process, served) and document length: pairs/s with and without reuse, their ratio and
    the largest score difference."""
    source, repository = _exports(cache)
    documents = {name: _documents(words) for name, words in DOCUMENT_WORDS.items()}
    in_process = {name: _in_process(source, repository, docs, rounds) for name, docs in documents.items()}
    return {"in_process": in_process, "served": _served(repository, documents, rounds)}


def _exports(cache: Path) -> tuple[Path, Path]:
    from crossrank.export import stamp
    from crossrank.export.exporter import ExportOptions, export

    builders = importlib.import_module("tests.model_builders")  # the test suite's, run from the repository root
    # 4 layers of width 256: small enough for any CPU, large enough that its matmuls, not per-call overheads,
    # take the time, as in a real reranker.
    source = builders.tiny_qwen3_reranker(cache / "small-qwen3-reranker", chat_template=None, hidden=256, layers=4)
    repository = cache / "prefix-reuse-repository"
    for reuse, name in ((True, MODELS["reuse"]), (False, MODELS["full"])):
        if stamp.foreign_version(stamp.read(repository / name)) is not None:  # missing, or an older layout
            export(ExportOptions(source=str(source), name=name, repository=repository, engine="torch-python",
                                 max_length=512, layout="qwen3-reranker", prefix_reuse=reuse))
    return source, repository


def _documents(words: tuple[int, int]) -> list[str]:
    from crossrank.export.samples import _WORDS

    rng = random.Random(7)
    return [" ".join(rng.choices(_WORDS, k=rng.randint(*words))) for _ in range(100)]


def _in_process(source: Path, repository: Path, documents: list[str], rounds: int) -> dict[str, Any]:
    import torch

    from crossrank.triton_models.causal_lm_score import shared_prefix
    from crossrank.triton_models.pair_tokenizer import PairTokenizer
    from crossrank.triton_models.torch_encoder import TorchEncoder

    name = MODELS["reuse"]
    tokenizer = PairTokenizer.from_directory(repository / f"{name}_tokenizer" / "1")
    batch = tokenizer.encode([QUERY] * len(documents), documents)
    ids, mask = (torch.from_numpy(batch.tensors[n]) for n in ("input_ids", "attention_mask"))
    hf = str(repository / f"{name}_encoder" / "1" / "hf")
    tokens = _score_tokens(source)
    rates, scores = {}, {}
    for way, reuse in (("full", False), ("reuse", True)):
        encoder = TorchEncoder(hf, ["input_ids", "attention_mask"], score_tokens=tokens, prefix_reuse=reuse)
        scores[way] = encoder.score([batch.tensors])[0]  # warm-up, and the scores compared below
        rates[way] = len(documents) / _best_seconds(lambda e=encoder: e.score([batch.tensors]), rounds)
    return {**_summary(rates, scores, len(documents)), "prefix_tokens": shared_prefix(ids, mask.sum(dim=1)),
            "pair_tokens_mean": float(mask.sum(dim=1).float().mean())}


def _served(repository: Path, documents: dict[str, list[str]], rounds: int) -> dict[str, dict[str, Any]]:
    """Both exports behind one gateway and Triton; every request is 1 query x 100 documents, one at a time."""
    from crossrank_client import CrossEncoderClient

    process, target = timing.serve_gateway(["--repository", str(repository)])
    try:
        timing.wait_serving(target, process, 300)
        client = CrossEncoderClient(target, timeout=300)
        out = {}
        for length, docs in documents.items():
            rates, scores = {}, {}
            for way, model in MODELS.items():
                def call(model: str = model, docs: list[str] = docs) -> Any:
                    return client.rerank(QUERY, docs, model=model, raw_scores=True)

                response = call()  # warm-up, and the scores compared below
                scores[way] = _by_index(response)
                rates[way] = len(docs) / _best_seconds(call, rounds)
            out[length] = _summary(rates, scores, len(docs))
        client.close()
        return out
    finally:
        timing.stop(process)


def _by_index(response: Any) -> Any:
    import numpy as np

    scores = np.zeros(len(response.results), dtype=np.float64)
    for result in response.results:
        scores[result.index] = result.score
    return scores


def _best_seconds(call: Any, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _summary(rates: dict[str, float], scores: dict[str, Any], documents: int) -> dict[str, Any]:
    import numpy as np

    return {"documents": documents, "pairs_per_s_full": rates["full"], "pairs_per_s_reuse": rates["reuse"],
            "speedup": rates["reuse"] / rates["full"],
            "max_score_difference": float(np.max(np.abs(np.asarray(scores["reuse"]) - np.asarray(scores["full"]))))}


def _score_tokens(source: Path) -> tuple[int, int]:
    from transformers import AutoTokenizer

    yes, no = AutoTokenizer.from_pretrained(source).convert_tokens_to_ids(["yes", "no"])
    return int(yes), int(no)
