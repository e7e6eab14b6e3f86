"""What crossrank knows about a served model, and how that travels inside the Triton ensemble's config.

Export writes a `ModelInfo` into the ensemble's `parameters`; the gateway reads it back through Triton's
model-config API, so it needs no access to the repository's files and works with an external Triton.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

PARAMETER_PREFIX = "crossrank_"


class Task(str, Enum):
    """What a model's scores mean."""

    RERANK = "rerank"  # one logit per pair: a relevance score
    CLASSIFY = "classify"  # several labels per pair, for example NLI


class Activation(str, Enum):
    """Function from logits to the scores a request gets unless it asks for raw scores."""

    SIGMOID = "sigmoid"
    SOFTMAX = "softmax"
    IDENTITY = "identity"
    TANH = "tanh"


@dataclass(frozen=True)
class ModelInfo:
    """A served model: its name (the ensemble's) and the metadata export recorded."""

    name: str
    task: Task
    labels: tuple[str, ...]
    activation: Activation
    max_length: int
    engine: str
    precision: str
    source: str
    max_batch_size: int
    # The instruction a layout with an instruction slot uses when a request gives none (Qwen3-Reranker's), "" for
    # none; a request's own instruction replaces it.
    default_instruction: str = ""
    # Whether a request may set an instruction: the layout has a slot (mxbai-rerank-v2's has no default).
    accepts_instruction: bool = False
    # The exact head (docs/models.md): the ensemble of the fp32 encoder served beside this reduced-precision
    # one ("" = none), and the bound on |fast logit - fp32 logit| that export measured (safety factor
    # included) over `head_samples` pairs.
    exact_model: str = ""
    head_delta: float = 0.0
    head_samples: int = 0

    @property
    def exact_head(self) -> bool:
        """Whether reranks re-score their head with the fp32 encoder."""
        return bool(self.exact_model)

    def to_parameters(self) -> dict[str, str]:
        """Serializes into Triton config parameters (string values only)."""
        return {
            f"{PARAMETER_PREFIX}task": self.task.value,
            f"{PARAMETER_PREFIX}labels": json.dumps(list(self.labels)),
            f"{PARAMETER_PREFIX}activation": self.activation.value,
            f"{PARAMETER_PREFIX}max_length": str(self.max_length),
            f"{PARAMETER_PREFIX}engine": self.engine,
            f"{PARAMETER_PREFIX}precision": self.precision,
            f"{PARAMETER_PREFIX}source": self.source,
            f"{PARAMETER_PREFIX}instruction": self.default_instruction,  # the key export has always written
            f"{PARAMETER_PREFIX}accepts_instruction": "true" if self.accepts_instruction else "false",
            f"{PARAMETER_PREFIX}exact_model": self.exact_model,
            f"{PARAMETER_PREFIX}head_delta": repr(self.head_delta),
            f"{PARAMETER_PREFIX}head_samples": str(self.head_samples),
        }

    @classmethod
    def from_parameters(cls, name: str, max_batch_size: int, params: Mapping[str, str]) -> ModelInfo | None:
        """Reads what `to_parameters` wrote; None for a model that crossrank did not export."""
        get = {k[len(PARAMETER_PREFIX):]: v for k, v in params.items() if k.startswith(PARAMETER_PREFIX)}
        if "task" not in get:
            return None
        return cls(
            name=name,
            task=Task(get["task"]),
            labels=tuple(json.loads(get["labels"])),
            activation=Activation(get["activation"]),
            max_length=int(get["max_length"]),
            engine=get.get("engine", ""),
            precision=get.get("precision", ""),
            source=get.get("source", ""),
            max_batch_size=max_batch_size,
            default_instruction=get.get("instruction", ""),
            # exports from before the flag: a slot always had a default instruction
            accepts_instruction=get.get("accepts_instruction") == "true" or bool(get.get("instruction")),
            exact_model=get.get("exact_model", ""),  # exports from before the exact head: none
            head_delta=float(get.get("head_delta") or 0.0),
            head_samples=int(get.get("head_samples") or 0),
        )
