"""Format `qwen3-reranker`: Qwen3-Reranker as its model card publishes it ("Usage with Transformers").

- Recognised: never (a raw checkpoint looks like any Qwen3 causal LM): named with `--layout qwen3-reranker`.
- Tokens: a fixed system prompt, `<Instruct>: ... <Query>: ... <Document>: ...`, the assistant's empty thinking
  block, each part tokenized on its own, the body alone cut on the right to what the frame leaves of the max
  length (`framed` rule); a request that forbids truncation refuses a pair whose body was cut.
- Score: `softmax([no, yes])[yes]`, i.e. the sigmoid of the "yes" logit minus the "no" one: the encoder gives
  that difference, the label is "yes", the activation sigmoid. Instruction slot: the `<Instruct>` text
  (default the model card's).
- Reference: the model card's `format_instruction`, `process_inputs`, `compute_logits`, one pair at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crossrank.export.formats.base import (
    Checkpoint,
    Format,
    Prepared,
    ScoreReading,
    causal_labels,
    config_activation,
    load_pretrained,
)
from crossrank.export.options import ExportError
from crossrank.triton_models.pair_tokenizer import FramedLayout, TokenizerSettings

# Qwen3-Reranker's model card (Qwen/Qwen3-Reranker-0.6B, "Usage with Transformers"), verbatim.
QWEN3_FRAME = FramedLayout(
    prefix="<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
           "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n",
    body="<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}",
    suffix="<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    instruction="Given a web search query, retrieve relevant passages that answer the query")
QWEN3_MAX_LENGTH = 8192  # the model card's max_length, frame included
QWEN3_TOKENS = ("yes", "no")


def framed_logits(tokenizer: Any, model: Any, settings: TokenizerSettings, pairs: Sequence[tuple[str, str]],
                  tokens: Sequence[int]) -> np.ndarray:
    """Qwen3-Reranker's model-card code, one pair at a time: the log-odds of "yes" over "no" at the last
    position (its score is their sigmoid)."""
    import torch

    frame = settings.framed
    assert frame is not None
    prefix = tokenizer.encode(frame.prefix, add_special_tokens=False)
    suffix = tokenizer.encode(frame.suffix, add_special_tokens=False)
    rows = []
    with torch.no_grad():
        for query, document in pairs:
            body = frame.body.format(instruction=frame.instruction, query=query, document=document)
            ids = tokenizer(body, truncation="longest_first", return_attention_mask=False,
                            max_length=settings.max_length - len(prefix) - len(suffix))["input_ids"]
            logits = model(input_ids=torch.tensor([prefix + ids + suffix])).logits[0, -1]
            rows.append(float(logits[tokens[0]] - logits[tokens[1]]))
    return np.array(rows, dtype=np.float32).reshape(-1, 1)


class Qwen3Reranker(Format):
    name = "qwen3-reranker"
    causal = True
    told = False
    summary = "a raw Qwen3-Reranker checkpoint, as its model card scores it"

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        from transformers import AutoModelForCausalLM

        tokenizer = checkpoint.tokenizer
        tokens = tuple(tokenizer.convert_tokens_to_ids(t) for t in QWEN3_TOKENS)
        if any(t is None or t == tokenizer.unk_token_id for t in tokens):
            raise ExportError(f"{checkpoint.source}: the tokenizer lacks the 'yes' or 'no' token that Qwen3-Reranker "
                              "is scored by: not a Qwen3-Reranker checkpoint")
        score_tokens = tuple(int(t) for t in tokens)
        settings = TokenizerSettings(
            max_length=checkpoint.options.max_length or QWEN3_MAX_LENGTH,
            pad_token_id=int(tokenizer.pad_token_id or 0), model_input_names=("input_ids", "attention_mask"),
            padding_side="right", framed=QWEN3_FRAME)
        model = load_pretrained(AutoModelForCausalLM, checkpoint, attn_implementation="eager")
        return Prepared(
            model=model, settings=settings, score=ScoreReading(score_tokens),
            labels=causal_labels(checkpoint, score_tokens), activation=config_activation(checkpoint.config, 1),
            reference=lambda pairs: framed_logits(tokenizer, model, settings, pairs, score_tokens),
            max_length=settings.max_length, instruction=QWEN3_FRAME.instruction, accepts_instruction=True)


FORMAT = Qwen3Reranker()
