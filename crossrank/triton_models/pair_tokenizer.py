"""Pair tokenization for cross-encoders, exactly as the model's own Hugging Face fast tokenizer does it.

The tokenization side of the format registry (crossrank/export/formats): each format records settings that
name one of the rules in `RULES` (`pair`, `prompt`, `chat`, `framed`, described below), and this module runs
that rule inside Triton.

Runs inside the `<name>_tokenizer` Triton model and in tests. Each text is encoded once without special
tokens (a rerank request repeats its query for every document, so the query is tokenized once), then
`Tokenizer.post_process` applies the model's pair template: the same steps `tokenizers` runs inside
`encode(text, pair)`, with the lengths its longest-first truncation keeps (`longest_first`, the library's
rule) cut beforehand, so ids and truncation are identical to the model's tokenizer. Cutting first matters for
a long query: the library would copy the whole query for every document (a 262,144-character query is tens
of thousands of tokens), where each pair here copies at most the window.
The untruncated length of every pair is reported so callers can refuse over-long pairs, and
where in its second text the kept tokens end, so that the gateway can cut long documents into chunks at
token boundaries (`document_end`, in characters).

Causal-LM rerankers in the sentence-transformers layout (its `CrossEncoder` over a `*ForCausalLM`) carry a
`ChatLayout`: the model's chat template rendered with one message per role (`query`, `document`), as the text
before, between and after the two. Each pair is that text tokenized whole (as `apply_chat_template` does),
cut to the max length, and, when cut, the template's closing tokens written back over its last tokens
(sentence-transformers' `restore_suffix`), so that the score is read after the template's own ending.

Qwen3-Reranker as its model card scores it carries a `FramedLayout`: a fixed prefix, the instruction, query
and document in its body format (the body alone truncated to what the frame leaves), a fixed suffix; each
part tokenized on its own.

bge-reranker-v2-gemma and mxbai-rerank-v2 take no pair template: their settings carry a `PromptTemplate`,
and each pair becomes `<bos> "A: query" <sep> "B: passage" <sep> prompt` (mxbai-rerank-v2: a chat prefix, then
`"query: ..." <sep> "document: ..." <sep> task prompt`, a chat suffix; a request's instruction as a line
before the query), truncated as the published code does (query to 3/4 of the max length, then only the
passage), padded on the right so the last real token's position is the same as unpadded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where used: the format registry and the CLI read these settings in the gateway's
    # image, which ships no `tokenizers`
    from tokenizers import Encoding, Tokenizer

SETTINGS_FILE = "crossrank_tokenizer.json"
TOKENIZER_FILE = "tokenizer.json"


DEFAULT_LLM_PROMPT = ("Given a query A and a passage B, determine whether the passage contains an answer to "
                      "the query by providing a prediction of either 'Yes' or 'No'.")


@dataclass(frozen=True)
class PromptTemplate:
    """How a causal-LM reranker wants a pair laid out (defaults: BAAI bge-reranker-v2-gemma's model card;
    mxbai-rerank-v2 adds a chat prefix and suffix around the pair and an optional instruction line)."""

    bos_token_id: int | None
    query_max_length: int  # tokens of "A: query" kept; the reference keeps 3/4 of the max length
    query_prefix: str = "A: "
    document_prefix: str = "B: "
    separator: str = "\n"
    prompt: str = DEFAULT_LLM_PROMPT
    prefix: str = ""  # before the pair, outside the max length
    suffix: str = ""  # after the prompt
    # With a request's instruction, put before the query (within its token budget); "" = no instruction slot.
    instruction_format: str = ""
    # The pair (query and passage) may also take the separator's and prompt's length beyond the max length
    # (FlagEmbedding's layerwise reranker truncates to that `encode_max_length`); False: the max length alone.
    budget_includes_prompt: bool = False


@dataclass(frozen=True)
class ChatLayout:
    """A chat template rendered around a (query, document) pair, and the tokens that close it."""

    before: str
    between: str
    after: str
    suffix_ids: tuple[int, ...]  # written back over the last tokens of a pair cut to the max length


@dataclass(frozen=True)
class FramedLayout:
    """A fixed prefix and suffix around a body built from the instruction, the query and the document."""

    prefix: str
    body: str  # str.format template with {instruction}, {query} and {document}
    suffix: str
    instruction: str  # the model's default instruction


@dataclass(frozen=True)
class TokenizerSettings:
    """What export records about the model's tokenizer (written as `crossrank_tokenizer.json`)."""

    max_length: int
    pad_token_id: int
    model_input_names: tuple[str, ...]
    truncation_side: str = "right"
    padding_side: str = "right"
    prompt: PromptTemplate | None = field(default=None)  # bge-reranker-v2-gemma's and mxbai-rerank-v2's layouts
    chat: ChatLayout | None = field(default=None)  # a sentence-transformers causal-LM reranker's layout
    framed: FramedLayout | None = field(default=None)  # Qwen3-Reranker's model-card layout
    # Prepended to each pair's first text: a sentence-transformers CrossEncoder's default prompt
    text_prefix: str = ""

    @property
    def rule(self) -> str:
        """The tokenization rule these settings name (a key of `RULES`)."""
        if self.prompt is not None:
            return "prompt"
        if self.chat is not None:
            return "chat"
        if self.framed is not None:
            return "framed"
        return "pair"

    @classmethod
    def load(cls, path: Path) -> TokenizerSettings:
        raw: dict[str, Any] = json.loads(path.read_text())
        raw["model_input_names"] = tuple(raw["model_input_names"])
        if raw.get("prompt") is not None:
            raw["prompt"] = PromptTemplate(**raw["prompt"])
        if raw.get("framed") is not None:
            raw["framed"] = FramedLayout(**raw["framed"])
        if raw.get("chat") is not None:
            raw["chat"] = ChatLayout(**{**raw["chat"], "suffix_ids": tuple(raw["chat"]["suffix_ids"])})
        return cls(**raw)

    def dump(self, path: Path) -> None:
        data = dict(self.__dict__)
        data["model_input_names"] = list(self.model_input_names)
        data["prompt"] = None if self.prompt is None else dict(self.prompt.__dict__)
        data["framed"] = None if self.framed is None else dict(self.framed.__dict__)
        data["chat"] = None if self.chat is None else {**self.chat.__dict__, "suffix_ids": list(self.chat.suffix_ids)}
        path.write_text(json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class PairBatch:
    """Encoder inputs for a batch of pairs, padded to the batch's longest pair."""

    tensors: dict[str, np.ndarray]  # input_ids, attention_mask, [token_type_ids]: int64 [n, length]
    num_tokens: np.ndarray  # int64 [n]: tokens of each pair before truncation, special tokens included
    # int64 [n]: characters of each pair's second text that its kept tokens cover (its length when nothing
    # of it was cut; with left truncation, where the kept tokens start)
    document_end: np.ndarray
    # bool [n]: whether the layout cut anything of the pair (what a request that forbids truncation refuses);
    # a causal-LM layout's fixed prompt lies outside the max length, so this is not num_tokens > max_length
    truncated: np.ndarray


class PairTokenizer:
    """Tokenizes (text, text_pair) batches into padded encoder inputs."""

    def __init__(self, tokenizer: Tokenizer, settings: TokenizerSettings) -> None:
        self._settings = settings
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._special_pair_tokens = tokenizer.num_special_tokens_to_add(is_pair=True)
        template = settings.prompt
        if template is not None:
            self._separator = tokenizer.encode(template.separator, add_special_tokens=False).ids
            self._prompt = tokenizer.encode(template.prompt, add_special_tokens=False).ids
            self._bos = [] if template.bos_token_id is None else [template.bos_token_id]
            self._around = (tokenizer.encode(template.prefix, add_special_tokens=False).ids,
                            tokenizer.encode(template.suffix, add_special_tokens=False).ids)
        if settings.framed is not None:  # the frame's fixed parts, tokenized once rather than per request
            self._frame = (tokenizer.encode(settings.framed.prefix, add_special_tokens=False).ids,
                           tokenizer.encode(settings.framed.suffix, add_special_tokens=False).ids)

    @classmethod
    def from_directory(cls, directory: Path) -> PairTokenizer:
        settings = TokenizerSettings.load(directory / SETTINGS_FILE)
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(directory / TOKENIZER_FILE)), settings)

    @property
    def settings(self) -> TokenizerSettings:
        return self._settings

    def encode(self, texts: list[str], text_pairs: list[str], instruction: str | None = None,
               truncation_side: str | None = None, max_document_tokens: int = 0) -> PairBatch:
        """Encodes pairs; truncation follows the model (longest first) and never fails. `instruction` fills the
        instruction slot of a layout that has one in place of the model's own (ignored by the others: the
        gateway refuses it for them). `truncation_side` ("left" or "right") replaces the model's side for the
        pair-template and prompt layouts (a chat or framed layout keeps its publisher's cut, on the right).
        `max_document_tokens` > 0 first cuts each second text after that many of its own tokens (a Cohere
        request's `max_tokens_per_doc`); `document_end` and `num_tokens` then describe the cut document."""
        if len(texts) != len(text_pairs):
            raise ValueError("texts and text_pairs differ in length")
        if truncation_side not in (None, "left", "right"):
            raise ValueError(f"truncation side must be left or right, not {truncation_side!r}")
        side = truncation_side or self._settings.truncation_side
        if max_document_tokens > 0:
            return self._with_cut_documents(texts, text_pairs, instruction, side, max_document_tokens)
        return self._encode(texts, text_pairs, instruction, side)

    def _with_cut_documents(self, texts: list[str], text_pairs: list[str], instruction: str | None, side: str,
                            max_document_tokens: int) -> PairBatch:
        """Each document cut at a token boundary to its first `max_document_tokens` tokens (its last, cutting on
        the left), as text, so that every layout then treats it as the whole document."""
        encoded = self._encode_once(text_pairs)
        cut: list[str] = []
        starts: list[int] = []  # where each kept piece begins in its document (non-zero only on the left)
        for text in text_pairs:
            encoding = encoded[text]
            if len(encoding) <= max_document_tokens:
                cut.append(text)
                starts.append(0)
            elif side == "left":
                begin = encoding.offsets[len(encoding) - max_document_tokens][0]
                cut.append(text[begin:])
                starts.append(begin)
            else:
                cut.append(text[:encoding.offsets[max_document_tokens - 1][1]])
                starts.append(0)
        batch = self._encode(texts, cut, instruction, side)
        document_end = batch.document_end.copy()
        for i, begin in enumerate(starts):  # in the caller's document: a left cut's offsets shift by its start
            if begin:
                whole = document_end[i] == len(cut[i])  # the pair kept all of the cut piece: it starts at `begin`
                document_end[i] = begin if whole else document_end[i] + begin
        return PairBatch(batch.tensors, batch.num_tokens, document_end, batch.truncated)

    def _encode(self, texts: list[str], text_pairs: list[str], instruction: str | None, side: str) -> PairBatch:
        return RULES[self._settings.rule](self, texts, text_pairs, instruction, side)

    def _encode_pair(self, texts: list[str], text_pairs: list[str], instruction: str | None, side: str) -> PairBatch:
        """Rule `pair`: the tokenizer's own pair template, longest-first truncation to the max length."""
        if self._settings.text_prefix:  # as sentence-transformers applies a prompt: before the first text
            texts = [self._settings.text_prefix + t for t in texts]
        encoded = self._encode_once([*texts, *text_pairs])
        rows: list[tuple[list[int], list[int]]] = []
        num_tokens = np.empty(len(texts), dtype=np.int64)
        document_end = np.array([len(p) for p in text_pairs], dtype=np.int64)
        budget = max(0, self._settings.max_length - self._special_pair_tokens)
        windows: dict[str, Encoding] = {}  # each text cut to the most any pair can keep of it, once
        lengths = {text: len(encoding) for text, encoding in encoded.items()}  # `.ids` builds a list each time
        for i, (text, pair) in enumerate(zip(texts, text_pairs)):
            first, second = encoded[text], encoded[pair]
            num_tokens[i] = lengths[text] + lengths[pair] + self._special_pair_tokens
            if num_tokens[i] > self._settings.max_length:
                keep_first, keep_second = longest_first(lengths[text], lengths[pair], budget)
                document_end[i] = self._kept_end(second, keep_second, len(pair), side)
                first = self._cut(self._cut(first, budget, side, windows, text), keep_first, side)
                second = self._cut(self._cut(second, budget, side, windows, pair), keep_second, side)
            joined = self._tokenizer.post_process(first, second, add_special_tokens=True)
            rows.append((joined.ids, joined.type_ids))
        return PairBatch(self._pad(rows), num_tokens, document_end, num_tokens > self._settings.max_length)

    @staticmethod
    def _cut(encoding: Encoding, count: int, side: str, cache: dict[str, Encoding] | None = None,
             key: str = "") -> Encoding:
        """A copy of `encoding` with `count` tokens, cut on `side` (kept in `cache`)."""
        if len(encoding) <= count:
            return encoding
        if cache is not None and key in cache:
            return cache[key]
        from tokenizers import Encoding

        cut = Encoding.merge([encoding], growing_offsets=False)
        # `truncate` keeps what it cut as `overflowing`, which every later copy copies too; cutting once more by
        # one token leaves a single one-token overflow in place of the (possibly huge) first one.
        cut.truncate(count + 1, direction=side)
        cut.truncate(count, direction=side)
        if cache is not None:
            cache[key] = cut
        return cut

    @staticmethod
    def _kept_end(document: Encoding, kept: int, length: int, side: str, shift: int = 0) -> int:
        """Where in the document (`length` characters; its encoding's offsets less `shift`, the length of a
        prefix the encoding included) its first `kept` tokens end, or with left truncation its last start."""
        total = len(document)
        if kept >= total:
            return length
        if side == "left":
            return length if kept == 0 else max(0, document.offsets[total - kept][0] - shift)
        return 0 if kept == 0 else max(0, document.offsets[kept - 1][1] - shift)

    def _encode_once(self, texts: list[str]) -> dict[str, Encoding]:
        """Each distinct text encoded once, without special tokens (a rerank request repeats its query)."""
        unique = list(dict.fromkeys(texts))
        return dict(zip(unique, self._tokenizer.encode_batch(unique, add_special_tokens=False)))

    def _encode_prompted(self, texts: list[str], text_pairs: list[str], instruction: str | None,
                         side: str) -> PairBatch:
        """Rule `prompt`: `PromptTemplate` (bge-reranker-v2-gemma's, mxbai-rerank-v2's and FlagEmbedding's layerwise
        reranker's published code)."""
        template = self._settings.prompt
        assert template is not None
        lead = template.instruction_format.format(instruction=instruction) if instruction else ""
        queries = [lead + template.query_prefix + t for t in texts]
        documents = [template.document_prefix + p for p in text_pairs]
        encoded = self._encode_once([*queries, *documents])
        limit, cut_right = self._settings.max_length, side != "left"
        pair_limit = limit + (len(self._separator) + len(self._prompt) if template.budget_includes_prompt else 0)
        rows: list[tuple[list[int], list[int]]] = []
        num_tokens = np.empty(len(texts), dtype=np.int64)
        document_end = np.array([len(p) for p in text_pairs], dtype=np.int64)
        truncated = np.zeros(len(texts), dtype=bool)
        prefix, suffix = self._around
        for i, (query, document) in enumerate(zip(queries, documents)):
            query_ids, document_ids = encoded[query].ids, encoded[document].ids
            num_tokens[i] = (len(prefix) + len(self._bos) + len(query_ids) + 2 * len(self._separator)
                             + len(document_ids) + len(self._prompt) + len(suffix))
            first = self._bos + _keep(query_ids, template.query_max_length, cut_right)
            second = self._separator + _keep(document_ids, limit, cut_right)
            overflow = len(first) + len(second) - pair_limit
            # As `prepare_for_model(truncation="only_second")`: the passage side gives way, unless it is
            # too short to absorb the overflow, in which case the reference leaves the pair whole.
            if 0 < overflow < len(second):
                second = _keep(second, len(second) - overflow, cut_right)
            rows.append((prefix + first + second + self._separator + self._prompt + suffix, []))
            kept = max(0, len(second) - len(self._separator))
            truncated[i] = len(first) < len(self._bos) + len(query_ids) or kept < len(document_ids)
            document_end[i] = self._kept_end(encoded[document], kept, len(text_pairs[i]), side,
                                             len(template.document_prefix))
        return PairBatch(self._pad(rows), num_tokens, document_end, truncated)

    def _encode_chat(self, texts: list[str], text_pairs: list[str], instruction: str | None, side: str) -> PairBatch:
        """Rule `chat`: a `ChatLayout` tokenized whole, cut, its closing tokens restored."""
        layout = self._settings.chat
        assert layout is not None
        rendered = [layout.before + t + layout.between + p + layout.after for t, p in zip(texts, text_pairs)]
        limit = self._settings.max_length
        closing = list(layout.suffix_ids[-limit:]) if limit else []
        rows: list[tuple[list[int], list[int]]] = []
        num_tokens = np.empty(len(texts), dtype=np.int64)
        document_end = np.array([len(p) for p in text_pairs], dtype=np.int64)
        for i, encoding in enumerate(self._tokenizer.encode_batch(rendered, add_special_tokens=False)):
            ids = encoding.ids
            num_tokens[i] = len(ids)
            if len(ids) >= limit:  # as sentence-transformers: a row that reached the limit gets its suffix back
                ids = ids[:limit]
                ids[len(ids) - len(closing):] = closing
            if len(encoding) > limit:
                kept = limit - len(closing)  # tokens of the rendered text that survive
                start = len(layout.before) + len(texts[i]) + len(layout.between)
                end = encoding.offsets[kept - 1][1] if kept > 0 else 0
                document_end[i] = min(max(0, end - start), len(text_pairs[i]))
            rows.append((ids, []))
        return PairBatch(self._pad(rows), num_tokens, document_end, num_tokens > limit)

    def _encode_framed(self, texts: list[str], text_pairs: list[str], instruction: str | None,
                       side: str) -> PairBatch:
        """Rule `framed`: a `FramedLayout`, the body alone cut to what the frame leaves."""
        layout = self._settings.framed
        assert layout is not None
        task = instruction or layout.instruction
        prefix, suffix = self._frame
        budget = max(0, self._settings.max_length - len(prefix) - len(suffix))
        head = layout.body.split("{document}")[0]  # what comes before the document, to place its characters
        heads = [head.format(instruction=task, query=t) for t in texts]
        bodies = [layout.body.format(instruction=task, query=t, document=p)
                  for t, p in zip(texts, text_pairs)]
        rows: list[tuple[list[int], list[int]]] = []
        num_tokens = np.empty(len(texts), dtype=np.int64)
        document_end = np.array([len(p) for p in text_pairs], dtype=np.int64)
        for i, encoding in enumerate(self._tokenizer.encode_batch(bodies, add_special_tokens=False)):
            num_tokens[i] = len(prefix) + len(encoding) + len(suffix)
            if len(encoding) > budget:  # the body alone is cut, on the right (the model card's truncation)
                end = encoding.offsets[budget - 1][1] if budget else 0
                document_end[i] = min(max(0, end - len(heads[i])), len(text_pairs[i]))
            rows.append((prefix + encoding.ids[:budget] + suffix, []))
        return PairBatch(self._pad(rows), num_tokens, document_end,
                         num_tokens > len(prefix) + budget + len(suffix))

    def _pad(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
        """(ids, type_ids) rows padded to the longest, on the model's side (causal-LM exports pad right)."""
        length = max((len(ids) for ids, _ in rows), default=0)
        out = {
            "input_ids": np.full((len(rows), length), self._settings.pad_token_id, dtype=np.int64),
            "attention_mask": np.zeros((len(rows), length), dtype=np.int64),
        }
        if "token_type_ids" in self._settings.model_input_names:
            out["token_type_ids"] = np.zeros((len(rows), length), dtype=np.int64)
        left = self._settings.padding_side == "left"
        for row, (ids, type_ids) in enumerate(rows):
            n = len(ids)
            cols = slice(length - n, length) if left else slice(0, n)
            out["input_ids"][row, cols] = ids
            out["attention_mask"][row, cols] = 1
            if "token_type_ids" in out:
                out["token_type_ids"][row, cols] = type_ids
        return out


# The tokenization rules, by name: what a model format (crossrank/export/formats) chooses for its pairs through
# the settings it records. A format whose pairs follow none of these adds its rule here, beside the others,
# because this module runs inside Triton and imports nothing of crossrank.
RULES = {
    "pair": PairTokenizer._encode_pair,
    "prompt": PairTokenizer._encode_prompted,
    "chat": PairTokenizer._encode_chat,
    "framed": PairTokenizer._encode_framed,
}


def longest_first(first: int, second: int, budget: int) -> tuple[int, int]:
    """Tokens of each text that `tokenizers`' longest-first truncation keeps of a pair of `first` and `second`
    tokens when `budget` tokens fit beside the special ones (its `truncate_encodings`, case by case)."""
    if first + second <= budget:
        return first, second
    shorter, longer = sorted((first, second))
    longer = shorter if shorter > budget else max(shorter, budget - shorter)
    if shorter + longer > budget:
        shorter = budget // 2
        longer = shorter + budget % 2
    return (longer, shorter) if first > second else (shorter, longer)


def _keep(ids: list[int], count: int, from_start: bool) -> list[int]:
    """The first (or last) `count` ids: truncation without special tokens."""
    if len(ids) <= count:
        return list(ids)
    return list(ids[:count]) if from_start else list(ids[len(ids) - count:])
