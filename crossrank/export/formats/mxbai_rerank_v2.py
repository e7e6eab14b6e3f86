"""Format `mxbai-rerank-v2`: mixedbread's published scoring code (`mxbai_rerank/mxbai_rerank_v2.py`,
`MxbaiRerankV2`).

- Recognised: never (a Qwen2 causal LM like any other): named with `--layout mxbai-rerank-v2`.
- Tokens: a Qwen chat prefix, `query: ...` and `document: ...` lines, its task prompt and the assistant suffix;
  the query cut to 3/4 of the max length, then only the document (`prompt` rule); the max length lowered where
  it and the template would exceed the tokenizer's `model_max_length`, as its code does.
- Score: the "1" logit minus the "0" one at the last token; label "1"; sigmoid. Instruction slot: an
  `instruction: ...` line before the query.
- Reference: its `prepare_inputs` / `concat_input_ids` steps (`bge_gemma.prompt_input_ids` with its template).
"""

from __future__ import annotations

from typing import Any

from crossrank.export.formats.base import UNSET_MAX_LENGTH, Checkpoint, Format, Prepared, causal_labels, token_ids
from crossrank.export.formats.bge_gemma import prepared_prompt_format
from crossrank.triton_models.pair_tokenizer import PromptTemplate, TokenizerSettings

# mixedbread-ai/mxbai-rerank, mxbai_rerank/mxbai_rerank_v2.py (`MxbaiRerankV2`), verbatim.
MXBAI_TASK_PROMPT = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:")
MXBAI_PREFIX = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                "<|im_start|>user\n")
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
MXBAI_MAX_LENGTH = 8192  # its default; lowered so that the max length and the template fit the tokenizer's
MXBAI_TOKENS = ("1", "0")


def mxbai_template(max_length: int) -> PromptTemplate:
    """mxbai-rerank-v2's layout for pairs of at most `max_length` tokens (the template on top)."""
    return PromptTemplate(bos_token_id=None, query_max_length=max_length * 3 // 4, query_prefix="query: ",
                          document_prefix="document: ", separator="\n", prompt=MXBAI_TASK_PROMPT, prefix=MXBAI_PREFIX,
                          suffix=MXBAI_SUFFIX, instruction_format="instruction: {instruction}\n")


def mxbai_max_length(tokenizer: Any, requested: int) -> int:
    """As mxbai-rerank-v2's code: the max length, lowered where it and the template's fixed tokens (prefix, task
    prompt, suffix, separator) would exceed the tokenizer's `model_max_length`."""
    fixed = sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in (
        MXBAI_PREFIX, MXBAI_TASK_PROMPT, MXBAI_SUFFIX, "\n"))
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    return requested if not 0 < limit < UNSET_MAX_LENGTH or requested + fixed <= limit else limit - fixed


class MxbaiRerankV2(Format):
    name = "mxbai-rerank-v2"
    causal = True
    told = False
    summary = "a raw mxbai-rerank-v2 checkpoint, as its published code scores it"

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        tokenizer = checkpoint.tokenizer
        # its code scores by the first token of "1" and of "0"
        tokens = token_ids(checkpoint, MXBAI_TOKENS, "which mxbai-rerank-v2 is scored by: not an mxbai-rerank-v2 "
                           "checkpoint")
        max_length = mxbai_max_length(tokenizer, checkpoint.options.max_length or MXBAI_MAX_LENGTH)
        settings = TokenizerSettings(
            max_length=max_length, pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=("input_ids", "attention_mask"), padding_side="right",
            prompt=mxbai_template(max_length))
        return prepared_prompt_format(checkpoint, settings, tokens, causal_labels(checkpoint, tokens),
                                      accepts_instruction=True)


FORMAT = MxbaiRerankV2()
