"""Triton entry point (`model.py`) of the `<name>_tokenizer` python-backend model.

Thin on purpose: all tokenization lives in `pair_tokenizer.py` beside it. Triton's dynamic batcher may hand
over several requests at once; each is tokenized on its own and padded to its own longest pair (the encoder
pools the pairs of all of them and re-pads them across requests).

Two request parameters, which Triton's ensemble forwards to this step, come from the gateway:
`crossrank_query` (string) is the first text of every pair, sent once per request instead of once per
document (the `text` rows are then ignored: the gateway sends them empty); `crossrank_truncate` (bool,
default true) false refuses the request here, before the encoder runs, when a pair is longer than the
model's max length, with a message the gateway parses (`INPUT_TOO_LONG_MARK`); `crossrank_truncation_side`
("left" or "right", default the model's) is the side over-long pairs are cut on; `crossrank_max_document_tokens`
(int, default 0 = none) cuts each second text to that many of its own tokens first.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# One tokenization thread per instance (set before `tokenizers` starts its pool): instances scale
# tokenization, and a pool over every core in each instance would contend with the encoder's threads.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from pair_tokenizer import PairTokenizer

QUERY_PARAMETER = "crossrank_query"
TRUNCATE_PARAMETER = "crossrank_truncate"
INSTRUCTION_PARAMETER = "crossrank_instruction"
TRUNCATION_SIDE_PARAMETER = "crossrank_truncation_side"
MAX_DOCUMENT_TOKENS_PARAMETER = "crossrank_max_document_tokens"
INPUT_TOO_LONG_MARK = "crossrank-input-too-long"


def _strings(request: object, name: str) -> list[str]:
    array = pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)
    # Invalid UTF-8 never reaches here through the gateway; direct KServe callers get U+FFFD instead
    # of a failed batch.
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in array]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        directory = Path(args["model_repository"]) / args["model_version"]
        self._tokenizer = PairTokenizer.from_directory(directory)

    def execute(self, requests: list[object]) -> list[object]:
        responses = []
        for request in requests:
            try:
                responses.append(self._tokenize(request))
            except Exception as exc:  # one bad request must not fail the others in the batch
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tokenizer: {exc}")))
        return responses

    def _tokenize(self, request: Any) -> object:
        parameters = json.loads(request.parameters() or "{}")
        text_pairs = _strings(request, "text_pair")
        query = parameters.get(QUERY_PARAMETER)
        texts = [str(query)] * len(text_pairs) if query is not None else _strings(request, "text")
        batch = self._tokenizer.encode(texts, text_pairs, parameters.get(INSTRUCTION_PARAMETER) or None,
                                       parameters.get(TRUNCATION_SIDE_PARAMETER) or None,
                                       int(parameters.get(MAX_DOCUMENT_TOKENS_PARAMETER, 0)))
        if parameters.get(TRUNCATE_PARAMETER, True) is False:
            limit = self._tokenizer.settings.max_length
            over = np.flatnonzero(batch.truncated)
            if over.size:
                i = int(over[0])
                message = f"{INPUT_TOO_LONG_MARK} pair={i} tokens={int(batch.num_tokens[i])} limit={limit}"
                return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
        outputs = [pb_utils.Tensor(k, v) for k, v in batch.tensors.items()]
        outputs.append(pb_utils.Tensor("num_tokens", batch.num_tokens.reshape(-1, 1)))
        outputs.append(pb_utils.Tensor("document_end", batch.document_end.reshape(-1, 1)))
        return pb_utils.InferenceResponse(output_tensors=outputs)
