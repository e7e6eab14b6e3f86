"""The systems under comparison, each scoring one rerank request at a time:
sentence-transformers in-process (fp32, and bf16 where the CPU has bf16 hardware), the in-process ceiling
(PyTorch, length-sorted batches, at its best batch size), ONNX Runtime in-process (crossrank's exported
model and tokenizer code, no network, no queue), crossrank served (gateway over gRPC), and Triton's ensemble
called directly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from crossrank_bench.workload import RerankRequestSpec


class SentenceTransformersSystem:
    def __init__(self, model_dir: Path, precision: str = "fp32") -> None:
        import torch
        from sentence_transformers import CrossEncoder

        self.name = "sentence-transformers" + ("" if precision == "fp32" else f" {precision}")
        kwargs: dict[str, Any] = {"model_kwargs": {"dtype": torch.bfloat16}} if precision == "bf16" else {}
        self._model = CrossEncoder(str(model_dir), device="cpu", **kwargs)

    def score(self, spec: RerankRequestSpec) -> np.ndarray:
        pairs = [(spec.query, d) for d in spec.documents]
        return np.asarray(self._model.predict(pairs, batch_size=32))


class TorchSortedSystem:
    """The in-process ceiling: PyTorch (SDPA) at a precision, the request's pairs tokenized once, sorted by
    length and run in batches of `batch` pairs padded to their own longest."""

    def __init__(self, model_dir: Path, precision: str, batch: int) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.precision = precision
        self.batch = batch
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self._model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, dtype=dtype, attn_implementation="sdpa").eval()

    @property
    def name(self) -> str:
        return f"pytorch in-process {self.precision}, sorted, batch {self.batch}"

    def score(self, spec: RerankRequestSpec) -> np.ndarray:
        documents = list(spec.documents)
        lengths = self._tokenizer([spec.query] * len(documents), documents, truncation=True,
                                  return_length=True)["length"]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        out = np.empty(len(order), dtype=np.float32)
        with self._torch.inference_mode():
            for start in range(0, len(order), self.batch):
                rows = order[start:start + self.batch]
                batch = self._tokenizer([spec.query] * len(rows), [documents[i] for i in rows], truncation=True,
                                        padding=True, return_tensors="pt")
                out[rows] = self._model(**batch).logits[:, 0].float().numpy()
        return out


class OnnxRuntimeSystem:
    def __init__(self, repository: Path, model: str) -> None:
        self.name = "onnxruntime in-process" + (" int8" if model.endswith("int8") else "")
        from crossrank.triton_models.onnx_encoder import OnnxEncoder
        from crossrank.triton_models.pair_tokenizer import PairTokenizer

        self._tokenizer = PairTokenizer.from_directory(repository / f"{model}_tokenizer" / "1")
        self._encoder = OnnxEncoder(str(repository / f"{model}_encoder" / "1" / "model.onnx"),
                                    intra_op_threads=len(os.sched_getaffinity(0)),
                                    pad_token_id=self._tokenizer.settings.pad_token_id)

    def padding(self, specs: list[RerankRequestSpec], merged: int) -> dict[str, float]:
        """Padded share of the encoder's positions: crossrank's batching with `merged` requests per Triton
        execution, against padding each 32 pairs to their longest (sentence-transformers' batches)."""
        from crossrank.triton_models.ragged_batching import RaggedBatcher, padding_fraction

        feeds = [self._tokenizer.encode([s.query] * len(s.documents), list(s.documents)).tensors for s in specs]
        batcher = RaggedBatcher(list(feeds[0]))
        for start in range(0, len(feeds), merged):
            batcher.score(feeds[start:start + merged], lambda feed: np.zeros((len(feed["input_ids"]), 1)))
        lengths = np.concatenate([f["attention_mask"].sum(axis=1) for f in feeds])
        in_order = sum(32 * int(lengths[i:i + 32].max()) if len(lengths[i:i + 32]) == 32
                       else len(lengths[i:]) * int(lengths[i:].max()) for i in range(0, len(lengths), 32))
        return {"crossrank": padding_fraction(batcher.real_tokens, batcher.padded_tokens),
                "batches_of_32_in_order": padding_fraction(int(lengths.sum()), in_order)}

    def token_counts(self, spec: RerankRequestSpec) -> np.ndarray:
        batch = self._tokenizer.encode([spec.query] * len(spec.documents), list(spec.documents))
        return np.minimum(batch.num_tokens, self._tokenizer.settings.max_length)

    def score(self, spec: RerankRequestSpec) -> np.ndarray:
        batch = self._tokenizer.encode([spec.query] * len(spec.documents), list(spec.documents))
        return self._encoder.score([batch.tensors])[0][:, 0]


class ServedSystem:
    """crossrank's gateway over gRPC with the async Python client."""

    def __init__(self, target: str, model: str = "", label: str = "", top_n: int = 0) -> None:
        from crossrank_client import AsyncCrossEncoderClient

        self.name = "crossrank served" + (f" {label}" if label else "") + (f", top_n {top_n}" if top_n else "")
        self._model = model
        self._top_n = top_n
        self._client = AsyncCrossEncoderClient(target, timeout=300)
        # With top_n: each request's head (document indices, in order) and documents re-scored with fp32.
        self.heads: dict[RerankRequestSpec, tuple[tuple[int, ...], int]] = {}

    async def score(self, spec: RerankRequestSpec) -> Any:
        response = await self._client.rerank(spec.query, spec.documents, model=self._model, raw_scores=True,
                                             top_n=self._top_n)
        if self._top_n:
            self.heads[spec] = (tuple(r.index for r in response), response.usage.rescored)
        return response

    async def close(self) -> None:
        await self._client.close()


class TritonDirectSystem:
    """Triton's ensemble over KServe gRPC, bypassing the gateway (for the gateway's overhead)."""

    def __init__(self, url: str, model: str, label: str = "") -> None:
        import tritonclient.grpc.aio as triton

        self.name = "triton ensemble direct" + (f" ({label})" if label else "")

        self._triton = triton
        self._client = triton.InferenceServerClient(url)
        self._model = model

    async def score(self, spec: RerankRequestSpec) -> Any:
        t = self._triton
        n = len(spec.documents)
        text = t.InferInput("text", [n, 1], "BYTES")
        text.set_data_from_numpy(np.array([[spec.query.encode()]] * n, dtype=np.object_))
        pair = t.InferInput("text_pair", [n, 1], "BYTES")
        pair.set_data_from_numpy(np.array([[d.encode()] for d in spec.documents], dtype=np.object_))
        result = await self._client.infer(self._model, [text, pair])
        return result.as_numpy("logits")

    async def close(self) -> None:
        await self._client.close()
