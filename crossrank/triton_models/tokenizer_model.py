"""Triton entry point (`model.py`) of the `<name>_tokenizer` python-backend model.

Thin on purpose: all tokenization lives in `pair_tokenizer.py` beside it. Triton's dynamic batcher may hand
over several requests at once; each is tokenized on its own and padded to its own longest pair (the encoder
pools the pairs of all of them and re-pads them across requests).

The request parameters it reads, and how it refuses an over-long pair, are the gateway-Triton contract
(`triton_contract.py`, copied beside this file). It records the request ids the gateway says it abandoned in
the server's register (`cancelled.py`), where the encoder finds them; it tokenizes those requests all the same
(cheap next to the encoder, and see encoder_model.py for why no step answers them with an error).
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
from cancelled import CancelledRequests
from pair_tokenizer import PairTokenizer
from triton_contract import (
    CANCELLED_PARAMETER,
    INSTRUCTION_PARAMETER,
    MAX_DOCUMENT_TOKENS_PARAMETER,
    QUERY_PARAMETER,
    TRUNCATE_PARAMETER,
    TRUNCATION_SIDE_PARAMETER,
    too_long_message,
)


def _strings(request: object, name: str) -> list[str]:
    array = pb_utils.get_input_tensor_by_name(request, name).as_numpy().reshape(-1)
    # Invalid UTF-8 never reaches here through the gateway; direct KServe callers get U+FFFD instead
    # of a failed batch.
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in array]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        directory = Path(args["model_repository"]) / args["model_version"]
        self._tokenizer = PairTokenizer.from_directory(directory)
        self._cancelled = CancelledRequests()

    def execute(self, requests: list[Any]) -> list[object]:
        parameters = [json.loads(request.parameters() or "{}") for request in requests]
        for given in parameters:
            if given.get(CANCELLED_PARAMETER):
                self._cancelled.add(str(given[CANCELLED_PARAMETER]).split())
        responses = []
        for request, given in zip(requests, parameters):
            try:
                responses.append(self._tokenize(request, given))
            except Exception as exc:  # one bad request must not fail the others in the batch
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tokenizer: {exc}")))
        return responses

    def _tokenize(self, request: Any, parameters: dict[str, Any]) -> object:
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
                message = too_long_message(i, int(batch.num_tokens[i]), limit)
                return pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))
        outputs = [pb_utils.Tensor(k, v) for k, v in batch.tensors.items()]
        outputs.append(pb_utils.Tensor("num_tokens", batch.num_tokens.reshape(-1, 1)))
        outputs.append(pb_utils.Tensor("document_end", batch.document_end.reshape(-1, 1)))
        return pb_utils.InferenceResponse(output_tensors=outputs)
