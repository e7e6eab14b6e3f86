"""Encoder engines on Triton's native backends, for the NGC Triton image (docker/triton.Dockerfile) on GPU
or CPU nodes; the pip-bundled Triton has the python backend only and cannot load them.

- `onnxruntime`: the ONNX encoder on Triton's onnxruntime backend. On a GPU, the TensorRT execution
  accelerator runs it (fp16: FP16 with LayerNorm kept in FP32, the usual source of reranker score drift),
  with one optimization profile over batch and sequence length and an engine cache; int8 is the CPU
  dynamic quantization.
- `tensorrt`: a TensorRT plan. Plans are specific to a GPU model and TensorRT version, so export writes the
  ONNX encoder and the config, and `docker/build_tensorrt_plan.py` builds `model.plan` beside them on the
  GPU node, inside the NGC image (the export Job or an init container does it in Kubernetes).

Export checks both against PyTorch by running the same ONNX graph with ONNX Runtime on the CPU in fp32;
their fp16 scores can only be measured on a GPU.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2 as mc

from crossrank.export.encoder_build import NO_HEAD, BuiltEncoder, default_threads, onnx_file
from crossrank.export.triton_repository import EncoderSpec
from crossrank.triton_contract import Precision
from crossrank.triton_models.pair_tokenizer import TokenizerSettings
from crossrank.triton_models.score_reading import ScoreReading

logger = logging.getLogger(__name__)

TRT_WORKSPACE_BYTES = 4 << 30
TRT_CACHE_DIR = "/tmp/crossrank-trt-cache"  # writable in the pod; engines rebuild after a restart
# The optimization profile's typical shape: a rerank request of 64 pairs of about 128 tokens.
OPT_BATCH, OPT_LENGTH = 64, 128


def _profile(input_names: tuple[str, ...], batch: int, length: int) -> str:
    return ",".join(f"{name}:{batch}x{length}" for name in input_names)


def tensorrt_accelerator(precision: str, input_names: tuple[str, ...], max_batch: int, max_length: int,
                         name: str) -> mc.ModelOptimizationPolicy:
    """Triton's onnxruntime backend options for the TensorRT execution accelerator."""
    policy = mc.ModelOptimizationPolicy()
    accelerator = policy.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
    accelerator.parameters.update({
        "precision_mode": "FP16" if precision == Precision.FP16 else "FP32",
        "trt_layer_norm_fp32_fallback": "1",
        "max_workspace_size_bytes": str(TRT_WORKSPACE_BYTES),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": f"{TRT_CACHE_DIR}/{name}",
        "trt_profile_min_shapes": _profile(input_names, 1, 1),
        "trt_profile_opt_shapes": _profile(input_names, min(OPT_BATCH, max_batch), min(OPT_LENGTH, max_length)),
        "trt_profile_max_shapes": _profile(input_names, max_batch, max_length),
    })
    return policy


def _cpu_check(onnx_path: Path, settings: TokenizerSettings, threads: int) -> Any:
    from crossrank.triton_models.onnx_encoder import OnnxEncoder

    encoder = OnnxEncoder(str(onnx_path), intra_op_threads=threads, pad_token_id=settings.pad_token_id,
                          padding_side=settings.padding_side)
    return lambda tensors: encoder.score([tensors])[0]


def _copy_onnx(onnx_path: Path) -> Any:
    def write_files(target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        from crossrank.export.onnx_export import onnx_files  # imports torch: only when writing

        for source in onnx_files(onnx_path):  # the graph, and its weights when they are external
            shutil.copy2(source, target / source.name)

    return write_files


class OnnxRuntimeEngine:
    """The ONNX encoder on Triton's native onnxruntime backend (TensorRT accelerator on GPUs)."""

    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score: ScoreReading = NO_HEAD,
              sequence_limit: int = 0) -> BuiltEncoder:
        onnx_path = onnx_file(model, input_names, work, options.precision, score)
        threads = options.encoder_threads or default_threads()
        gpu = options.precision == Precision.FP16
        spec = EncoderSpec(
            input_names=input_names, num_labels=num_labels, backend="onnxruntime",
            parameters={"intra_op_thread_count": str(threads), "inter_op_thread_count": "1"},
            instance_count=1, write_files=_copy_onnx(onnx_path),
            # fp32 runs where Triton finds a GPU, else on the CPU; fp16 needs one; int8 is a CPU format.
            instance_kind=mc.ModelInstanceGroup.KIND_GPU if gpu else (
                mc.ModelInstanceGroup.KIND_CPU if options.precision == Precision.INT8
                else mc.ModelInstanceGroup.KIND_AUTO),
            optimization=None if options.precision == Precision.INT8 else tensorrt_accelerator(
                options.precision, input_names, options.max_batch_size, sequence_limit or settings.max_length,
                f"{options.name}_encoder"),
        )
        if gpu:
            logger.info("fp16 is applied by TensorRT on the GPU when Triton loads the model; export checks the "
                        "same graph in fp32 on the CPU")
        return BuiltEncoder(spec, _cpu_check(onnx_path, settings, threads),
                            checked_precision=Precision.FP32 if gpu else None)


class TensorRTEngine:
    """A TensorRT plan on Triton's tensorrt backend; the plan is built on the GPU node from the ONNX encoder."""

    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score: ScoreReading = NO_HEAD,
              sequence_limit: int = 0) -> BuiltEncoder:
        onnx_path = onnx_file(model, input_names, work, Precision.FP32, score)
        spec = EncoderSpec(
            input_names=input_names, num_labels=num_labels, backend="tensorrt", parameters={},
            instance_count=1, write_files=_copy_onnx(onnx_path), instance_kind=mc.ModelInstanceGroup.KIND_GPU,
        )
        version = Path(options.repository) / f"{options.name}_encoder" / "1"
        logger.warning("the %s encoder needs its TensorRT plan, built on the GPU node inside the NGC Triton "
                       "image: python3 docker/build_tensorrt_plan.py %s --output %s --precision %s "
                       "--max-batch %d --max-length %d", options.name, version / "model.onnx",
                       version / "model.plan", options.precision, options.max_batch_size,
                       sequence_limit or settings.max_length)
        return BuiltEncoder(spec, _cpu_check(onnx_path, settings, options.encoder_threads or default_threads()),
                            checked_precision=Precision.FP32)
