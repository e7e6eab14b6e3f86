"""Format `sentence-transformers`: sentence-transformers' `CrossEncoder` over a `*ForCausalLM` (Qwen3-Reranker and
its kind saved by sentence-transformers, or any causal LM whose chat template renders a `query` and a
`document` role).

- Recognised: a causal LM whose chat template places a `query` and a `document` message verbatim.
- Tokens: the chat template rendered with one message per role, tokenized whole, cut to the max length, the
  template's closing tokens written back over a pair that reached it (sentence-transformers'
  `restore_suffix`; `chat` rule). A request that forbids truncation refuses a pair over the max length.
- Score: `LogitScore`, the "true" token's logit minus the "false" one's ("yes" and "no" unless the saved module
  names others); the label is the true token; the CrossEncoder's activation. No instruction slot.
- Reference: the CrossEncoder itself (`predict` without activation), and its own input ids are checked.
"""

from __future__ import annotations

from typing import Any

from crossrank.export import reference
from crossrank.export.formats.base import (
    LLM_MAX_LENGTH,
    UNSET_MAX_LENGTH,
    Checkpoint,
    Format,
    Prepared,
    ScoreReading,
    causal_labels,
    module_activation,
)
from crossrank.export.options import ExportError
from crossrank.triton_models.pair_tokenizer import ChatLayout, TokenizerSettings

# Stand-ins for the query and the document while rendering the template: private-use characters that no
# template adds and no tokenizer normalizes away.
_QUERY, _DOCUMENT = "\ue000q\ue000", "\ue001d\ue001"


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


class SentenceTransformersLLM(Format):
    name = "sentence-transformers"
    causal = True
    summary = "a causal LM whose chat template has query and document roles, scored as its CrossEncoder"

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.causal and chat_layout(checkpoint.tokenizer) is not None

    def refusal(self, checkpoint: Checkpoint) -> str | None:
        if chat_layout(checkpoint.tokenizer) is None:
            return (f"{checkpoint.source}: its chat template does not render a 'query' and a 'document' message "
                    "verbatim, which the sentence-transformers layout needs")
        return None

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        from sentence_transformers import CrossEncoder

        options = checkpoint.options
        try:
            encoder = CrossEncoder(str(checkpoint.path), device="cpu", trust_remote_code=options.trust_remote_code,
                                   max_length=options.max_length, model_kwargs={"attn_implementation": "eager"})
        except Exception as exc:
            raise ExportError(f"{options.source}: sentence-transformers cannot load it as a CrossEncoder: "
                              f"{str(exc).splitlines()[0]}") from exc
        scorers = [m for m in encoder if type(m).__name__ == "LogitScore"]
        if len(scorers) != 1:
            raise ExportError(f"{options.source}: a causal-LM CrossEncoder without one LogitScore module")
        scorer = scorers[0]
        tokens = (int(scorer.true_token_id),) + (
            () if scorer.false_token_id is None else (int(scorer.false_token_id),))
        tokenizer = encoder[0].tokenizer
        if getattr(tokenizer, "truncation_side", "right") != "right":
            raise ExportError(f"{options.source}: a left-truncating tokenizer with a chat template is not supported")
        limit = encoder.max_length
        positions = int(getattr(checkpoint.config, "max_position_embeddings", 0) or 0)
        if not limit or limit >= UNSET_MAX_LENGTH or (positions and limit > positions):
            limit = positions or LLM_MAX_LENGTH
            encoder.max_length = limit
        layout = chat_layout(tokenizer)
        assert layout is not None  # recognised, or refused when named
        settings = TokenizerSettings(
            max_length=int(encoder.max_length), pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=("input_ids", "attention_mask"), padding_side="right", chat=layout)
        return Prepared(
            model=encoder[0].model.eval(), settings=settings, score=ScoreReading(tokens),
            labels=causal_labels(checkpoint, tokens), activation=module_activation(encoder.activation_fn),
            reference=lambda pairs: reference.cross_encoder_logits(encoder, pairs), max_length=settings.max_length,
            check_tokens=lambda ours: reference.same_tokens_as(encoder, ours))


FORMAT = SentenceTransformersLLM()
