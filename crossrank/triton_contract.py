"""The contract between the gateway and the models export writes into Triton, declared once.

Both sides import it: the gateway (`crossrank.triton_contract`) and export, and the python-backend models,
which get a copy of this file beside their `model.py` (it needs nothing beyond the standard library, so it
loads in Triton's stub as it is). What a model says about itself travels in its ensemble's config parameters
(`model_info.py`); what travels with each request is here: the ensemble's tensors, the request parameters the
tokenizer reads, how the tokenizer refuses an over-long pair, and the names of engines and precisions.
"""

from __future__ import annotations

import json
from enum import Enum

# The value that asks export to choose (engine, precision, layout): one spelling everywhere.
AUTO = "auto"

# The ensemble's inputs and outputs. Besides the logits, the tokenizer reports of each pair its length before
# truncation and where its kept tokens end in the second text (see pair_tokenizer.py).
TEXT_INPUTS = ("text", "text_pair")
PAIR_FACTS = ("num_tokens", "document_end")
ENSEMBLE_OUTPUTS = ("logits", *PAIR_FACTS)

# Request parameters the ensemble forwards to its tokenizer.
# The first text of every pair, sent once per request instead of once per document (the `text` rows are then
# ignored: the gateway sends them empty).
QUERY_PARAMETER = "crossrank_query"
# Bool, default true; false refuses the request in the tokenizer, before the encoder runs, when a pair is
# longer than the model's max length (see `too_long_message`).
TRUNCATE_PARAMETER = "crossrank_truncate"
# Replaces the model's own instruction in its instruction slot.
INSTRUCTION_PARAMETER = "crossrank_instruction"
# "left" or "right" (default: the model's side): the side over-long pairs lose tokens on (TEI's
# `truncation_direction`).
TRUNCATION_SIDE_PARAMETER = "crossrank_truncation_side"
# Int, default 0 = none: each second text is first cut to this many of its own tokens (Cohere's
# `max_tokens_per_doc`).
MAX_DOCUMENT_TOKENS_PARAMETER = "crossrank_max_document_tokens"
# Request ids (space-separated) of pieces the gateway abandoned (their client cancelled, their deadline passed):
# the tokenizer records them in the server's register (triton_models/cancelled.py) and the encoder drops those
# requests. Sent on a small request of its own, which is answered once the work queued ahead of it has ended.
CANCELLED_PARAMETER = "crossrank_cancelled"

# How the tokenizer refuses an over-long pair: with Triton's INVALID_ARGUMENT code (the python backend's
# `TritonError.INVALID_ARG`), which nothing else the tokenizer returns carries, and a message whose details
# (which pair, how long) the gateway reads with `parse_too_long`.
INPUT_TOO_LONG_MARK = "crossrank-input-too-long"


def too_long_message(pair: int, tokens: int, limit: int) -> str:
    """The tokenizer's message for pair `pair` (within its request) of `tokens` tokens, over `limit`."""
    return f"{INPUT_TOO_LONG_MARK} " + json.dumps({"pair": pair, "tokens": tokens, "limit": limit})


def parse_too_long(message: str) -> tuple[int, int] | None:
    """(pair, tokens) from a message `too_long_message` wrote (Triton may put words before it), else None."""
    _, mark, details = message.partition(INPUT_TOO_LONG_MARK + " ")
    if not mark:
        return None
    try:
        fields, _ = json.JSONDecoder().raw_decode(details)
        return int(fields["pair"]), int(fields["tokens"])
    except (ValueError, KeyError, TypeError):
        return None


class EngineName(str, Enum):
    """What runs a model's encoder in Triton (`crossrank export --engine`)."""

    ONNX_PYTHON = "onnx-python"  # ONNX Runtime inside a python-backend model
    TORCH_PYTHON = "torch-python"  # PyTorch inside a python-backend model
    ONNXRUNTIME = "onnxruntime"  # Triton's native ONNX Runtime backend
    TENSORRT = "tensorrt"  # a TensorRT plan

    def __str__(self) -> str:
        return self.value

    @property
    def python_backend(self) -> bool:
        """Whether the pip-bundled Triton (python backend only) runs it, and export can run it in-process."""
        return self in (EngineName.ONNX_PYTHON, EngineName.TORCH_PYTHON)


class Precision(str, Enum):
    """The number format an encoder computes in (`crossrank export --precision`)."""

    FP32 = "fp32"  # the exact reference
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"

    def __str__(self) -> str:
        return self.value


PYTHON_BACKEND_ENGINES = tuple(e for e in EngineName if e.python_backend)
