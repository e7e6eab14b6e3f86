"""PyTorch encoder for cross-encoders (engine `torch-python`): CUDA in fp16/bf16/fp32 with SDPA attention
where the architecture has it, or the CPU (fp32, or bf16 where the CPU has it).

Runs inside the `<name>_encoder` Triton model and in tests; requests are merged and re-padded by
`ragged_batching.py` beside it. A causal-LM reranker's request whose pairs share a prefix (system text,
instruction, query) runs that prefix once and reuses its key/value cache (`causal_lm_score.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

try:  # inside Triton the sibling modules are imported flat; in the package, relatively
    from causal_lm_score import TokenLogitScorer, load_reading, score_shared_prefix
    from host_cpu import cpu_flags, has_bf16
    from ragged_batching import DEFAULT_TOKENS_PER_BATCH, RaggedBatcher
    from score_reading import ScoreReading
    from triton_contract import Precision
except ImportError:
    from crossrank.triton_contract import Precision
    from crossrank.triton_models.causal_lm_score import TokenLogitScorer, load_reading, score_shared_prefix
    from crossrank.triton_models.host_cpu import cpu_flags, has_bf16
    from crossrank.triton_models.ragged_batching import DEFAULT_TOKENS_PER_BATCH, RaggedBatcher
    from crossrank.triton_models.score_reading import ScoreReading

DTYPES = {Precision.FP32: torch.float32, Precision.FP16: torch.float16, Precision.BF16: torch.bfloat16}
# A GPU wants far wider batches than a CPU core's cache does.
GPU_TOKENS_PER_BATCH = 65_536

logger = logging.getLogger("crossrank.encoder")


def pick_device(precision: str) -> str:
    if torch.cuda.is_available():
        return "cuda"
    if precision == Precision.FP16:
        raise ValueError("precision fp16 needs a CUDA GPU; use bf16 or fp32 on the CPU")
    return "cpu"


class TorchEncoder:
    def __init__(self, model_dir: str, input_names: Sequence[str], precision: str = Precision.FP32,
                 device: str | None = None, pad_token_id: int = 0, padding_side: str = "right",
                 tokens_per_batch: int = 0, threads: int = 0, trust_remote_code: bool = False,
                 score_tokens: tuple[int, ...] | None = None, prefix_reuse: bool = True, score_layer: int = 0) -> None:
        self.device = device or pick_device(precision)
        if threads and self.device == "cpu":
            torch.set_num_threads(threads)
        if self.device == "cpu" and precision == Precision.BF16 and not has_bf16(cpu_flags()):
            # Said once, at load: without AMX or AVX-512 BF16, bf16 matmuls are emulated.
            logger.warning("this encoder was exported for bf16, but this CPU has no bf16 hardware (amx_bf16 or "
                           "avx512_bf16): expect it to run about 3x slower than fp32; export again on this "
                           "machine with --precision auto or fp32")

        def load(**kwargs: object) -> torch.nn.Module:
            common = {"dtype": DTYPES[precision], "trust_remote_code": trust_remote_code, **kwargs}
            if score_tokens is not None or score_layer:  # a causal-LM reranker: its tokens' logits or a layer's head
                return load_reading(model_dir, ScoreReading(score_tokens or (), score_layer), **common)
            return AutoModelForSequenceClassification.from_pretrained(model_dir, **common)

        try:
            model = load(attn_implementation="sdpa")
        except (ValueError, ImportError):  # architectures without SDPA support
            model = load()
        self._model = model.to(self.device).eval()
        self._input_names = list(input_names)
        width = tokens_per_batch or (GPU_TOKENS_PER_BATCH if self.device == "cuda" else DEFAULT_TOKENS_PER_BATCH)
        self._batcher = RaggedBatcher(self._input_names, pad_token_id, padding_side, width)
        # Right padding is what the shared-prefix path reads (each row's real tokens from position 0).
        self._prefix_reuse = prefix_reuse and isinstance(self._model, TokenLogitScorer) and padding_side == "right"

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def batcher(self) -> RaggedBatcher:
        return self._batcher

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {k: torch.from_numpy(v).to(self.device, non_blocking=True) for k, v in feed.items()}
        with torch.inference_mode():
            # Logits leave in fp32: activations and sorting never run in half precision.
            output = self._model(**tensors)
            logits = output if isinstance(output, torch.Tensor) else output.logits
            return logits.float().cpu().numpy()

    def score(self, requests: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Returns logits [n_i, labels] for each request's inputs [n_i, length_i]."""
        return [r for r in self.score_unless_cancelled(requests, lambda _: False) if r is not None]

    def score_unless_cancelled(self, requests: Sequence[dict[str, np.ndarray]],
                               cancelled: Callable[[int], bool]) -> list[np.ndarray | None]:
        """As `score`; None for a request cancelled before all its rows were scored."""
        if not self._prefix_reuse:
            return self._batcher.score_unless_cancelled(requests, self._run, cancelled)
        results: list[np.ndarray | None] = []
        shared: list[bool] = []
        for i, request in enumerate(requests):
            scores = None if cancelled(i) else self._score_shared(request)
            results.append(scores)
            shared.append(scores is not None)
        # Requests without a long shared prefix: merged and re-padded as usual (a cancelled one is asked again).
        rest = [i for i, done in enumerate(shared) if not done]
        if rest:
            merged = self._batcher.score_unless_cancelled([requests[i] for i in rest], self._run,
                                                          lambda j: cancelled(rest[j]))
            for i, logits in zip(rest, merged):
                results[i] = logits
        return results

    def _score_shared(self, request: dict[str, np.ndarray]) -> np.ndarray | None:
        ids = torch.from_numpy(request["input_ids"]).to(self.device)
        mask = torch.from_numpy(request["attention_mask"]).to(self.device)
        with torch.inference_mode():
            scores = score_shared_prefix(self._model, ids, mask, self._batcher.tokens_per_batch)
        return None if scores is None else scores.cpu().numpy()
