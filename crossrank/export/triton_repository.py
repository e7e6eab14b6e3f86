"""Writes the three Triton models of one cross-encoder: `<name>` (ensemble), `<name>_tokenizer`, `<name>_encoder`;
with the exact head two more: `<name>_exact`, an ensemble of the same tokenizer and `<name>_exact_encoder`, the
fp32 encoder that re-scores a rerank's head (the gateway finds it in `<name>`'s parameters; it is not a model
of its own in ListModels).

Configs are built as `ModelConfig` protobufs and written with `text_format`, so every file Triton reads is
valid by construction. A model is written into a scratch folder beside the repository and moved into place
only when complete, so a failed export never leaves a half model that would stop Triton from starting.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from crossrank.model_info import ModelInfo
from crossrank.triton_contract import PAIR_FACTS, TEXT_INPUTS

VERSION = "1"
EXACT_SUFFIX = "_exact"


@dataclass(frozen=True)
class EncoderSpec:
    """How the encoder model of one engine is configured and filled."""

    input_names: tuple[str, ...]
    num_labels: int
    backend: str  # "python", "onnxruntime" or "tensorrt"
    parameters: Mapping[str, str]
    instance_count: int
    write_files: Callable[[Path], None]  # fills the model's version folder
    instance_kind: int = mc.ModelInstanceGroup.KIND_CPU
    # Native backends: execution accelerators and the like (the python backend ignores it).
    optimization: mc.ModelOptimizationPolicy | None = None


def _tensor(cls: type, name: str, dtype: int, dims: list[int]) -> object:
    return cls(name=name, data_type=dtype, dims=dims)


def _set_parameters(config: mc.ModelConfig, params: Mapping[str, str]) -> None:
    for key, value in params.items():
        config.parameters[key].string_value = value


def tokenizer_config(name: str, input_names: tuple[str, ...], max_batch_size: int,
                     instance_count: int) -> mc.ModelConfig:
    config = mc.ModelConfig(name=name, backend="python", max_batch_size=max_batch_size)
    config.input.extend(_tensor(mc.ModelInput, n, mc.TYPE_STRING, [1]) for n in TEXT_INPUTS)
    config.output.extend(_tensor(mc.ModelOutput, n, mc.TYPE_INT64, [-1]) for n in input_names)
    config.output.extend(_tensor(mc.ModelOutput, n, mc.TYPE_INT64, [1]) for n in PAIR_FACTS)
    config.dynamic_batching.SetInParent()
    config.instance_group.add(count=instance_count, kind=mc.ModelInstanceGroup.KIND_CPU)
    return config


def encoder_config(name: str, spec: EncoderSpec, max_batch_size: int) -> mc.ModelConfig:
    config = mc.ModelConfig(name=name, backend=spec.backend, max_batch_size=max_batch_size)
    # Each request comes padded to its own longest pair. Triton's dynamic batcher merges only requests of
    # equal shape unless inputs allow ragged batches; the python-backend encoders receive every request's
    # tensors apart and re-pad them together (ragged_batching.py), so they allow it. Native backends would
    # concatenate the tensors, so they get only equal shapes.
    ragged = spec.backend == "python"
    config.input.extend(mc.ModelInput(name=n, data_type=mc.TYPE_INT64, dims=[-1], allow_ragged_batch=ragged)
                        for n in spec.input_names)
    config.output.append(_tensor(mc.ModelOutput, "logits", mc.TYPE_FP32, [spec.num_labels]))
    config.dynamic_batching.SetInParent()
    config.instance_group.add(count=spec.instance_count, kind=spec.instance_kind)
    if spec.optimization is not None:
        config.optimization.CopyFrom(spec.optimization)
    _set_parameters(config, spec.parameters)
    return config


def ensemble_config(info: ModelInfo, input_names: tuple[str, ...], num_labels: int,
                    exact: bool = False) -> mc.ModelConfig:
    """`info.name`'s ensemble, or (`exact`) its exact head's: the same tokenizer, the fp32 encoder."""
    name = f"{info.name}{EXACT_SUFFIX}" if exact else info.name
    config = mc.ModelConfig(name=name, platform="ensemble", max_batch_size=info.max_batch_size)
    config.input.extend(_tensor(mc.ModelInput, n, mc.TYPE_STRING, [1]) for n in TEXT_INPUTS)
    config.output.append(_tensor(mc.ModelOutput, "logits", mc.TYPE_FP32, [num_labels]))
    config.output.extend(_tensor(mc.ModelOutput, n, mc.TYPE_INT64, [1]) for n in PAIR_FACTS)
    tokenize = config.ensemble_scheduling.step.add(model_name=f"{info.name}_tokenizer", model_version=-1)
    for n in TEXT_INPUTS:
        tokenize.input_map[n] = n
    for n in input_names:
        tokenize.output_map[n] = f"_{n}"
    for n in PAIR_FACTS:
        tokenize.output_map[n] = n
    encode = config.ensemble_scheduling.step.add(model_name=f"{name}_encoder", model_version=-1)
    for n in input_names:
        encode.input_map[n] = f"_{n}"
    encode.output_map["logits"] = "logits"
    # The exact head's ensemble carries no model facts: discovery (model_info.py) passes it by.
    _set_parameters(config, {"crossrank_exact_head_of": info.name} if exact else info.to_parameters())
    return config


def write_config(directory: Path, config: mc.ModelConfig) -> None:
    (directory / VERSION).mkdir(parents=True, exist_ok=True)
    (directory / "config.pbtxt").write_text(text_format.MessageToString(config))


def write_models(repository: Path, info: ModelInfo, encoder: EncoderSpec,
                 fill_tokenizer: Callable[[Path], None], tokenizer_instances: int = 1,
                 fill_ensemble: Callable[[Path], None] | None = None, exact: EncoderSpec | None = None) -> None:
    """Writes the ensemble, tokenizer and encoder models, replacing any earlier export of `info.name`; with
    `exact` (the fp32 encoder's spec) the exact head's ensemble and encoder too, else removes earlier ones.

    The three are written beside the repository first. The old ensemble leaves before either of its step
    models is replaced and the new one arrives after both new ones are in place, so a crash midway leaves
    the old model whole, or no model of that name (`serve` exports it again), never an ensemble over a
    mix of old and new steps."""
    repository.mkdir(parents=True, exist_ok=True)
    head = f"{info.name}{EXACT_SUFFIX}"
    names = (info.name, f"{info.name}_tokenizer", f"{info.name}_encoder", head, f"{head}_encoder")
    with tempfile.TemporaryDirectory(dir=repository.resolve().parent, prefix=f".{info.name}-export-") as scratch:
        root = Path(scratch)
        write_config(root / names[0], ensemble_config(info, encoder.input_names, encoder.num_labels))
        if fill_ensemble is not None:
            fill_ensemble(root / names[0])
        write_config(root / names[1], tokenizer_config(names[1], encoder.input_names, info.max_batch_size,
                                                       tokenizer_instances))
        fill_tokenizer(root / names[1] / VERSION)
        write_config(root / names[2], encoder_config(names[2], encoder, info.max_batch_size))
        encoder.write_files(root / names[2] / VERSION)
        if exact is not None:
            write_config(root / names[3], ensemble_config(info, exact.input_names, exact.num_labels, exact=True))
            write_config(root / names[4], encoder_config(names[4], exact, info.max_batch_size))
            exact.write_files(root / names[4] / VERSION)
        retired = root / "retired"
        retired.mkdir()
        for n in names:  # the ensemble first: from here the old model is gone as a whole
            if (repository / n).exists():
                (repository / n).rename(retired / n)
        # the step models first, the exact head's ensemble before the model's: the new model appears whole
        for n in (names[1], names[2], names[4], names[3], names[0]):
            if (root / n).exists():
                (root / n).rename(repository / n)


def read_config(directory: Path) -> mc.ModelConfig:
    """Parses a model's config.pbtxt (tests and `serve` use it to find exported models)."""
    return text_format.Parse((directory / "config.pbtxt").read_text(), mc.ModelConfig())
