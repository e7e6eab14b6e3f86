"""Shared-prefix reuse for causal-LM rerankers, measured in-process through the `torch-python` encoder that
Triton runs: a small random Qwen3 reranker (4 layers, width 256) exported in Qwen3-Reranker's layout (system
text, instruction and query: a prefix of over 64 tokens), one query x 100 documents, with the prefix's
key/value cache reused and without, for short documents (10-25 words) and longer ones (20-70 words): the gain
follows the prefix's share of each pair. The model comes from the test suite's builders (a tokenizer trained
there, no hub)."""

from __future__ import annotations

import importlib
import random
import time
from pathlib import Path
from typing import Any

QUERY = "which river runs through the capital of france and what is the city known for"


DOCUMENT_WORDS = {"short": (10, 25), "long": (20, 70)}


def measure(cache: Path, rounds: int = 3) -> dict[str, dict[str, Any]]:
    """For each document length: pairs/s with and without reuse, their ratio and the largest score difference."""
    return {name: _measure(cache, words, rounds) for name, words in DOCUMENT_WORDS.items()}


def _measure(cache: Path, words: tuple[int, int], rounds: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from crossrank.export.exporter import ExportOptions, export
    from crossrank.export.samples import _WORDS
    from crossrank.triton_models.causal_lm_score import shared_prefix
    from crossrank.triton_models.pair_tokenizer import PairTokenizer
    from crossrank.triton_models.torch_encoder import TorchEncoder
    builders = importlib.import_module("tests.model_builders")  # the test suite's, run from the repository root
    # 4 layers of width 256: small enough for any CPU, large enough that its matmuls, not per-call overheads,
    # take the time, as in a real reranker.
    source = builders.tiny_qwen3_reranker(cache / "small-qwen3-reranker", chat_template=None, hidden=256, layers=4)
    repository = cache / "prefix-repository-256"
    if not (repository / "q").exists():
        export(ExportOptions(source=str(source), name="q", repository=repository, engine="torch-python",
                             max_length=512, layout="qwen3-reranker"))
    tokenizer = PairTokenizer.from_directory(repository / "q_tokenizer" / "1")
    rng = random.Random(7)
    documents = [" ".join(rng.choices(_WORDS, k=rng.randint(*words))) for _ in range(100)]
    batch = tokenizer.encode([QUERY] * len(documents), documents)
    ids, mask = (torch.from_numpy(batch.tensors[n]) for n in ("input_ids", "attention_mask"))
    hf = str(repository / "q_encoder" / "1" / "hf")
    tokens = _score_tokens(source)
    rates, scores = {}, {}
    for name, reuse in (("full", False), ("reuse", True)):
        encoder = TorchEncoder(hf, ["input_ids", "attention_mask"], score_tokens=tokens, prefix_reuse=reuse)
        scores[name] = encoder.score([batch.tensors])[0]  # warm-up, and the scores compared below
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            encoder.score([batch.tensors])
            best = min(best, time.perf_counter() - started)
        rates[name] = len(documents) / best
    return {"documents": len(documents), "prefix_tokens": shared_prefix(ids, mask.sum(dim=1)),
            "pair_tokens_mean": float(mask.sum(dim=1).float().mean()),
            "pairs_per_s_full": rates["full"], "pairs_per_s_reuse": rates["reuse"],
            "speedup": rates["reuse"] / rates["full"],
            "max_score_difference": float(np.max(np.abs(scores["reuse"] - scores["full"])))}


def _score_tokens(source: Path) -> tuple[int, int]:
    from transformers import AutoTokenizer

    yes, no = AutoTokenizer.from_pretrained(source).convert_tokens_to_ids(["yes", "no"])
    return int(yes), int(no)
