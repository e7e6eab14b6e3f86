"""The python-backend engines: `onnx-python` (ONNX Runtime inside a python-backend model, runs with the
pip-bundled Triton on any CPU) and `torch-python` (PyTorch, CUDA or CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from crossrank.export.encoder_build import (
    NO_HEAD,
    BuiltEncoder,
    UnsupportedEngineError,
    copy_triton_module,
    default_threads,
    onnx_file,
    threads_parameter,
)
from crossrank.export.triton_repository import EncoderSpec
from crossrank.triton_contract import EngineName
from crossrank.triton_models.pair_tokenizer import TokenizerSettings
from crossrank.triton_models.score_reading import ScoreReading


class OnnxPythonEngine:
    """ONNX Runtime (CPU) in a python-backend model."""

    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score: ScoreReading = NO_HEAD,
              sequence_limit: int = 0) -> BuiltEncoder:
        from crossrank.triton_models.onnx_encoder import DEFAULT_TOKENS_PER_BATCH, OnnxEncoder

        onnx_path = onnx_file(model, input_names, work, options.precision, score)
        threads = options.encoder_threads or default_threads()
        encoder = OnnxEncoder(str(onnx_path), intra_op_threads=threads, pad_token_id=settings.pad_token_id,
                              padding_side=settings.padding_side)

        def write_files(target: Path) -> None:
            from crossrank.export.onnx_export import onnx_files  # imports torch: only when writing

            copy_triton_module(target, "encoder_model.py", "onnx_encoder.py", "ragged_batching.py", "host_cpu.py")
            for source in onnx_files(onnx_path):  # the graph, and its weights when they are external
                shutil.copy2(source, target / source.name)

        spec = EncoderSpec(
            input_names=input_names, num_labels=num_labels, backend="python",
            parameters={"engine": EngineName.ONNX_PYTHON.value,
                        "intra_op_threads": threads_parameter(options.encoder_threads),
                        "pad_token_id": str(settings.pad_token_id),
                        "padding_side": settings.padding_side,
                        "tokens_per_batch": str(DEFAULT_TOKENS_PER_BATCH)},
            instance_count=options.encoder_instances, write_files=write_files,
        )
        return BuiltEncoder(spec, lambda tensors: encoder.score([tensors])[0], batcher=encoder.batcher)


class TorchPythonEngine:
    """PyTorch in a python-backend model: CUDA fp16/bf16/fp32 with SDPA, or the CPU (fp32, bf16)."""

    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score: ScoreReading = NO_HEAD,
              sequence_limit: int = 0) -> BuiltEncoder:
        from crossrank.triton_models.torch_encoder import TorchEncoder, pick_device

        try:
            device = pick_device(options.precision)
        except ValueError as exc:
            raise UnsupportedEngineError(str(exc)) from exc
        hf = work / "hf"
        model.save_pretrained(hf)  # fp32 weights; the encoder casts at load, on the serving machine
        threads = options.encoder_threads or default_threads()
        encoder = TorchEncoder(str(hf), input_names, precision=options.precision, device=device,
                               pad_token_id=settings.pad_token_id, padding_side=settings.padding_side,
                               threads=threads, trust_remote_code=options.trust_remote_code,
                               score_tokens=score.score_tokens, score_layer=score.layer,
                               prefix_reuse=options.prefix_reuse)

        def write_files(target: Path) -> None:
            copy_triton_module(target, "encoder_model.py", "torch_encoder.py", "ragged_batching.py",
                               "causal_lm_score.py", "score_reading.py", "host_cpu.py")
            shutil.copytree(hf, target / "hf")

        spec = EncoderSpec(
            input_names=input_names, num_labels=num_labels, backend="python",
            parameters={"engine": EngineName.TORCH_PYTHON.value, "precision": str(options.precision),
                        "input_names": ",".join(input_names),
                        "pad_token_id": str(settings.pad_token_id), "padding_side": settings.padding_side,
                        "threads": threads_parameter(options.encoder_threads),
                        "trust_remote_code": "true" if options.trust_remote_code else "false",
                        **score.parameters(),
                        "prefix_reuse": "true" if options.prefix_reuse else "false"},
            instance_count=options.encoder_instances, write_files=write_files,
        )
        return BuiltEncoder(spec, lambda tensors: encoder.score([tensors])[0], batcher=encoder.batcher)
