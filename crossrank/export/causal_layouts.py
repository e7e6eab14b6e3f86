"""How a causal-LM reranker lays out a (query, document) pair, told from the checkpoint or named by the user.

- `sentence-transformers`: sentence-transformers' `CrossEncoder` over a `*ForCausalLM` (Qwen3-Reranker and
  its kind saved by sentence-transformers, or any causal LM whose chat template renders a `query` and a
  `document` role): the chat template rendered with one message per role, tokenized whole, the template's
  closing tokens restored over a pair cut to the max length, scored by `LogitScore` (the "true" token's logit
  minus the "false" one's; "yes" and "no" unless the saved module names others).
- `qwen3-reranker`: Qwen3-Reranker's model card as published (a fixed system prompt, `<Instruct>: ...
  <Query>: ... <Document>: ...`, the assistant's empty thinking block; the body alone truncated; the score
  `softmax([no, yes])[yes]`, which is the sigmoid of the "yes" logit minus the "no" one). A raw checkpoint
  looks like any Qwen3 causal LM, so this layout is only ever named, never told.
- `bge-gemma`: BAAI bge-reranker-v2-gemma's model card (`A: query`, `B: passage`, its prompt, the "Yes" logit);
  told from a Gemma checkpoint whose chat template has no such roles.
- `mxbai-rerank-v2`: mixedbread's published scoring code (`mxbai_rerank/mxbai_rerank_v2.py`): a Qwen chat
  prefix, `query: ...` and `document: ...` lines (an optional `instruction: ...` line before the query), its
  task prompt and the assistant suffix; the query cut to 3/4 of the max length, then only the document; the
  score the "1" logit minus the "0" one. A Qwen2 causal LM like any other, so only ever named.

A causal checkpoint that is neither is refused with a message naming `--layout`, never scored by a guess.
"""

from __future__ import annotations

from typing import Any

from crossrank.triton_contract import AUTO
from crossrank.triton_models.pair_tokenizer import ChatLayout, FramedLayout, PromptTemplate

SENTENCE_TRANSFORMERS = "sentence-transformers"
BGE_GEMMA = "bge-gemma"
QWEN3_RERANKER = "qwen3-reranker"
MXBAI_RERANK_V2 = "mxbai-rerank-v2"
LAYOUTS = (AUTO, SENTENCE_TRANSFORMERS, QWEN3_RERANKER, BGE_GEMMA, MXBAI_RERANK_V2)

# Qwen3-Reranker's model card (Qwen/Qwen3-Reranker-0.6B, "Usage with Transformers"), verbatim.
QWEN3_FRAME = FramedLayout(
    prefix="<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
           "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n",
    body="<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}",
    suffix="<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    instruction="Given a web search query, retrieve relevant passages that answer the query")
QWEN3_MAX_LENGTH = 8192  # the model card's max_length, frame included
QWEN3_TOKENS = ("yes", "no")
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


_GEMMA_TYPES = {"gemma", "gemma2"}
# Stand-ins for the query and the document while rendering the template: private-use characters that no
# template adds and no tokenizer normalizes away.
_QUERY, _DOCUMENT = "\ue000q\ue000", "\ue001d\ue001"


class LayoutError(ValueError):
    """The pair layout cannot be told or cannot be reproduced; the message says what to do."""


def _render(tokenizer: Any, query: str, document: str) -> str:
    messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
    return str(tokenizer.apply_chat_template(messages, tokenize=False))


def chat_layout(tokenizer: Any) -> ChatLayout | None:
    """The chat template around a pair, where the template carries both roles and places their contents
    verbatim (checked with other contents, spaces at their ends included); None otherwise."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        text = _render(tokenizer, _QUERY, _DOCUMENT)
    except Exception:  # a template that raises on unknown roles carries no pair
        return None
    if text.count(_QUERY) != 1 or text.count(_DOCUMENT) != 1 or text.index(_QUERY) > text.index(_DOCUMENT):
        return None
    before, rest = text.split(_QUERY)
    between, after = rest.split(_DOCUMENT)
    for query, document in ((" padded query ", "\ta document\n"), ("x", "y")):
        if _render(tokenizer, query, document) != before + query + between + document + after:
            return None
    return ChatLayout(before, between, after, _closing_tokens(tokenizer, before, between, after))


def _closing_tokens(tokenizer: Any, before: str, between: str, after: str) -> tuple[int, ...]:
    """The template's closing tokens as sentence-transformers derives them: the longest common token suffix of
    the pair rendered with two different fillers ("0" and "1 2 3 4"), nothing if the renders never differ."""
    first, second = (tokenizer(before + f + between + f + after, add_special_tokens=False)["input_ids"]
                     for f in ("0", "1 2 3 4"))
    count = 0
    for left, right in zip(reversed(first), reversed(second)):
        if left != right:
            break
        count += 1
    return tuple(first[len(first) - count:]) if 0 < count < min(len(first), len(second)) else ()


def determine(requested: str, model_type: str, tokenizer: Any, source: str) -> str:
    """The layout of a causal-LM checkpoint: the one requested, else the one its files show."""
    if requested not in LAYOUTS:
        raise LayoutError(f"--layout must be one of {', '.join(LAYOUTS)}, got {requested!r}")
    has_roles = chat_layout(tokenizer) is not None
    if requested == SENTENCE_TRANSFORMERS and not has_roles:
        raise LayoutError(f"{source}: its chat template does not render a 'query' and a 'document' message "
                          "verbatim, which the sentence-transformers layout needs")
    if requested != AUTO:
        return requested
    if has_roles:
        return SENTENCE_TRANSFORMERS
    if model_type in _GEMMA_TYPES:
        return BGE_GEMMA
    raise LayoutError(f"{source}: a causal LM ({model_type or 'unknown type'}) whose pair layout export cannot "
                      "tell (its chat template renders no 'query' and 'document' roles): name it with --layout "
                      f"{QWEN3_RERANKER}, --layout {MXBAI_RERANK_V2} or --layout {BGE_GEMMA}, or give the model a "
                      "sentence-transformers chat template")
