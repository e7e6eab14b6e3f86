"""Format `bge-gemma`: BAAI bge-reranker-v2-gemma as its model card scores it.

- Recognised: a Gemma / Gemma-2 causal LM whose chat template has no query and document roles.
- Tokens: `<bos> "A: query" <sep> "B: passage" <sep> prompt` (`--prompt`, default the model card's), the query
  cut to 3/4 of the max length, then only the passage (`prompt` rule, padded on the right); the prompt lies
  outside the max length, so a request that forbids truncation refuses only a pair that was cut.
- Score: the logit of the score token (`--score-token`, default "Yes") at the last token, which is the label;
  sigmoid. No instruction slot.
- Reference: the model card's `get_inputs` (`prompt_input_ids`), one pair at a time so that no padding can
  shift positions, through `AutoModelForCausalLM`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from crossrank.export.formats.base import (
    LLM_MAX_LENGTH,
    Checkpoint,
    Format,
    Prepared,
    ScoreReading,
    config_activation,
    load_pretrained,
)
from crossrank.export.options import ExportError
from crossrank.triton_models.pair_tokenizer import DEFAULT_LLM_PROMPT, PromptTemplate, TokenizerSettings

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
_GEMMA_TYPES = {"gemma", "gemma2"}


def prompt_input_ids(tokenizer: Any, settings: TokenizerSettings, query: str, passage: str) -> list[int]:
    """One pair's input ids as the bge-reranker-v2-gemma model card builds them (`get_inputs`), and as
    mxbai-rerank-v2's code does (`prepare_inputs`, `concat_input_ids`: the same steps inside a chat prefix and
    suffix)."""
    template = settings.prompt
    assert template is not None
    separator = tokenizer(template.separator, add_special_tokens=False)["input_ids"]
    prompt = tokenizer(template.prompt, add_special_tokens=False)["input_ids"]
    query_ids = tokenizer(template.query_prefix + query, add_special_tokens=False,
                          max_length=template.query_max_length, truncation=True)["input_ids"]
    passage_ids = tokenizer(template.document_prefix + passage, add_special_tokens=False,
                            max_length=settings.max_length, truncation=True)["input_ids"]
    bos = [] if template.bos_token_id is None else [template.bos_token_id]
    # FlagEmbedding's layerwise reranker lets the pair take the separator's and prompt's length too
    pair_limit = settings.max_length + (len(separator) + len(prompt) if template.budget_includes_prompt else 0)
    item = tokenizer.prepare_for_model(bos + query_ids, separator + passage_ids, truncation="only_second",
                                       max_length=pair_limit, padding=False,
                                       return_attention_mask=False, return_token_type_ids=False,
                                       add_special_tokens=False)
    prefix, suffix = (tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
                      for text in (template.prefix, template.suffix))
    return prefix + list(item["input_ids"]) + separator + prompt + suffix


def prompt_logits(tokenizer: Any, model: Any, settings: TokenizerSettings, pairs: Sequence[tuple[str, str]],
                  tokens: Sequence[int]) -> np.ndarray:
    """Logits [n, 1] of the pairs laid out by `prompt_input_ids`: the first token's logit at the last position,
    minus the second's where there are two."""
    import torch

    rows: list[float] = []
    last_report = time.monotonic()
    with torch.no_grad():
        for query, passage in pairs:
            ids = torch.tensor([prompt_input_ids(tokenizer, settings, query, passage)])
            logits = model(input_ids=ids).logits[0, -1].float()
            rows.append(float(logits[tokens[0]] - (logits[tokens[1]] if len(tokens) == 2 else 0.0)))
            if time.monotonic() - last_report > PROGRESS_EVERY_S:  # a billion-parameter LM takes a while
                logger.info("reference scores: %d of %d pairs", len(rows), len(pairs))
                last_report = time.monotonic()
    return np.array(rows, dtype=np.float32).reshape(-1, 1)


def sequence_limit(tokenizer: Any, settings: TokenizerSettings) -> int:
    """The most tokens a pair can take into the encoder: the max length, plus the prompt's fixed tokens."""
    template = settings.prompt
    assert template is not None
    fixed = [tokenizer(text, add_special_tokens=False)["input_ids"]
             for text in (template.separator, template.prompt, template.prefix, template.suffix)]
    extra = len(fixed[0]) + len(fixed[1]) if template.budget_includes_prompt else 0
    return settings.max_length + extra + sum(len(ids) for ids in fixed)


def prepared_prompt_format(checkpoint: Checkpoint, settings: TokenizerSettings, tokens: tuple[int, ...],
                           labels: tuple[str, ...], accepts_instruction: bool = False) -> Prepared:
    """What the prompt-laid-out causal formats share once their settings and score tokens are known."""
    from transformers import AutoModelForCausalLM

    model = load_pretrained(AutoModelForCausalLM, checkpoint, attn_implementation="eager")
    tokenizer = checkpoint.tokenizer
    return Prepared(
        model=model, settings=settings, score=ScoreReading(tokens), labels=labels,
        activation=config_activation(checkpoint.config, 1),
        reference=lambda pairs: prompt_logits(tokenizer, model, settings, pairs, tokens),
        max_length=sequence_limit(tokenizer, settings), accepts_instruction=accepts_instruction)


class BgeGemma(Format):
    name = "bge-gemma"
    causal = True
    summary = "bge-reranker-v2-gemma's model card: 'A: query', 'B: passage', its prompt, the 'Yes' logit"

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.causal and checkpoint.model_type in _GEMMA_TYPES

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        options, tokenizer = checkpoint.options, checkpoint.tokenizer
        ids = tokenizer(options.score_token, add_special_tokens=False)["input_ids"]
        if not ids or tokenizer.unk_token_id in ids:
            raise ExportError(f"{options.source}: the tokenizer has no token for {options.score_token!r}, whose "
                              "logit would be the score; name another with --score-token")
        max_length = options.max_length or LLM_MAX_LENGTH
        bos = tokenizer.bos_token_id
        settings = TokenizerSettings(
            max_length=max_length, pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=("input_ids", "attention_mask"),
            truncation_side=str(getattr(tokenizer, "truncation_side", "right")),
            padding_side="right",  # positions must match the unpadded pair; the score is read at its end
            prompt=PromptTemplate(bos_token_id=None if bos is None else int(bos), query_max_length=max_length * 3 // 4,
                                  prompt=options.prompt or DEFAULT_LLM_PROMPT))
        return prepared_prompt_format(checkpoint, settings, (int(ids[0]),), (options.score_token,))


FORMAT = BgeGemma()
