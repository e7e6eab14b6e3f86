"""Pair tokenization for cross-encoders, exactly as the model's own Hugging Face fast tokenizer does it.

Runs inside the `<name>_tokenizer` Triton model and in tests. Each text is encoded once without special
tokens (a rerank request repeats its query for every document, so the query is tokenized once), then
`Tokenizer.post_process` applies the model's pair template and longest-first truncation: the same two
steps `tokenizers` runs inside `encode(text, pair)`, so ids and truncation are identical to the model's
tokenizer. The untruncated length of every pair is reported so callers can refuse over-long pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

SETTINGS_FILE = "crossrank_tokenizer.json"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class TokenizerSettings:
    """What export records about the model's tokenizer (written as `crossrank_tokenizer.json`)."""

    max_length: int
    pad_token_id: int
    model_input_names: tuple[str, ...]
    truncation_side: str = "right"
    padding_side: str = "right"

    @classmethod
    def load(cls, path: Path) -> TokenizerSettings:
        raw = json.loads(path.read_text())
        raw["model_input_names"] = tuple(raw["model_input_names"])
        return cls(**raw)

    def dump(self, path: Path) -> None:
        data = dict(self.__dict__)
        data["model_input_names"] = list(self.model_input_names)
        path.write_text(json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class PairBatch:
    """Encoder inputs for a batch of pairs, padded to the batch's longest pair."""

    tensors: dict[str, np.ndarray]  # input_ids, attention_mask, [token_type_ids]: int64 [n, length]
    num_tokens: np.ndarray  # int64 [n]: tokens of each pair before truncation, special tokens included


class PairTokenizer:
    """Tokenizes (text, text_pair) batches into padded encoder inputs."""

    def __init__(self, tokenizer: Tokenizer, settings: TokenizerSettings) -> None:
        self._settings = settings
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        # post_process applies whatever truncation is enabled on the tokenizer, so the settings used by
        # the model's tokenizer for pairs are installed here once.
        self._truncating = Tokenizer.from_str(tokenizer.to_str())
        self._truncating.no_padding()
        self._truncating.enable_truncation(
            settings.max_length, strategy="longest_first", direction=settings.truncation_side
        )
        self._special_pair_tokens = tokenizer.num_special_tokens_to_add(is_pair=True)

    @classmethod
    def from_directory(cls, directory: Path) -> PairTokenizer:
        settings = TokenizerSettings.load(directory / SETTINGS_FILE)
        return cls(Tokenizer.from_file(str(directory / TOKENIZER_FILE)), settings)

    @property
    def settings(self) -> TokenizerSettings:
        return self._settings

    def encode(self, texts: list[str], text_pairs: list[str]) -> PairBatch:
        """Encodes pairs; truncation follows the model (longest first) and never fails."""
        if len(texts) != len(text_pairs):
            raise ValueError("texts and text_pairs differ in length")
        unique = list(dict.fromkeys([*texts, *text_pairs]))
        encoded = dict(zip(unique, self._tokenizer.encode_batch(unique, add_special_tokens=False)))
        pairs: list[Encoding] = []
        num_tokens = np.empty(len(texts), dtype=np.int64)
        for i, (text, pair) in enumerate(zip(texts, text_pairs)):
            first, second = encoded[text], encoded[pair]
            num_tokens[i] = len(first.ids) + len(second.ids) + self._special_pair_tokens
            pairs.append(self._truncating.post_process(first, second, add_special_tokens=True))
        return PairBatch(self._pad(pairs), num_tokens)

    def _pad(self, pairs: list[Encoding]) -> dict[str, np.ndarray]:
        length = max((len(p.ids) for p in pairs), default=0)
        names = self._settings.model_input_names
        out = {
            "input_ids": np.full((len(pairs), length), self._settings.pad_token_id, dtype=np.int64),
            "attention_mask": np.zeros((len(pairs), length), dtype=np.int64),
        }
        if "token_type_ids" in names:
            out["token_type_ids"] = np.zeros((len(pairs), length), dtype=np.int64)
        left = self._settings.padding_side == "left"
        for row, pair in enumerate(pairs):
            n = len(pair.ids)
            cols = slice(length - n, length) if left else slice(0, n)
            out["input_ids"][row, cols] = pair.ids
            out["attention_mask"][row, cols] = 1
            if "token_type_ids" in out:
                out["token_type_ids"][row, cols] = pair.type_ids
        return out
