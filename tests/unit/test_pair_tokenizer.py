"""The Triton tokenizer model must produce exactly what the model's own Hugging Face tokenizer produces."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from crossrank.triton_models.pair_tokenizer import PairTokenizer, TokenizerSettings
from tests.model_builders import pairs_with_long_documents


def _pair_tokenizer(model_dir: Path, max_length: int) -> tuple[PairTokenizer, object]:
    hf = AutoTokenizer.from_pretrained(model_dir)
    settings = TokenizerSettings(max_length=max_length, pad_token_id=hf.pad_token_id,
                                 model_input_names=tuple(hf.model_input_names))
    return PairTokenizer(Tokenizer.from_str(hf.backend_tokenizer.to_str()), settings), hf


@pytest.mark.parametrize("max_length", [512, 64, 20])
def test_matches_hf_tokenizer_including_longest_first_truncation(minilm_dir: Path, max_length: int) -> None:
    tokenizer, hf = _pair_tokenizer(minilm_dir, max_length)
    long_query = "a long query about the capital of france " * 300
    pairs = [*pairs_with_long_documents(), ("Ünïcödé café 東京 🎉", "مرحبا بالعالم\u0000 nul"), ("q", "d"),
             *((long_query, b) for _, b in pairs_with_long_documents(6)), (long_query, long_query + "!")]
    texts, docs = [a for a, _ in pairs], [b for _, b in pairs]
    batch = tokenizer.encode(texts, docs)
    reference = hf(texts, docs, padding=True, truncation="longest_first", max_length=max_length,
                   return_tensors="np")
    assert set(batch.tensors) == set(reference.keys())
    for name, expected in reference.items():
        np.testing.assert_array_equal(batch.tensors[name], expected, err_msg=name)


def test_reports_untruncated_length(tiny_bert_dir: Path) -> None:
    tokenizer, hf = _pair_tokenizer(tiny_bert_dir, 64)
    pairs = pairs_with_long_documents(10)
    batch = tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs])
    for (a, b), count in zip(pairs, batch.num_tokens):
        assert count == len(hf(a, b)["input_ids"])
    assert batch.num_tokens.max() > 64 >= batch.tensors["input_ids"].shape[1]


def test_settings_round_trip(tmp_path: Path) -> None:
    settings = TokenizerSettings(128, 1, ("input_ids", "attention_mask"), "left", "left")
    settings.dump(tmp_path / "s.json")
    assert TokenizerSettings.load(tmp_path / "s.json") == settings


@pytest.mark.parametrize("max_length", [1024, 40, 12])
def test_causal_lm_prompt_layout_matches_the_model_card_code(tmp_path: Path, max_length: int) -> None:
    from crossrank.export.reference import prompt_input_ids
    from crossrank.triton_models.pair_tokenizer import PromptTemplate
    from tests.model_builders import tiny_gemma

    hf = AutoTokenizer.from_pretrained(tiny_gemma(tmp_path / "gemma"))
    settings = TokenizerSettings(max_length=max_length, pad_token_id=hf.pad_token_id,
                                 model_input_names=("input_ids", "attention_mask"),
                                 prompt=PromptTemplate(bos_token_id=hf.bos_token_id,
                                                       query_max_length=max_length * 3 // 4))
    tokenizer = PairTokenizer(Tokenizer.from_str(hf.backend_tokenizer.to_str()), settings)
    pairs = [*pairs_with_long_documents(12, long_words=300), (" ".join(["alpha"] * 60), "short"), ("q", "d")]
    batch = tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs])
    whole = replace(settings, max_length=10**6, prompt=replace(settings.prompt, query_max_length=10**6))
    for row, (query, passage) in enumerate(pairs):
        expected = prompt_input_ids(hf, settings, query, passage)
        mask = batch.tensors["attention_mask"][row]
        assert list(batch.tensors["input_ids"][row][mask == 1]) == expected
        assert mask[: len(expected)].all()  # padded on the right
        # what a request that forbids truncation refuses: a cut, not the prompt beyond the max length
        assert batch.truncated[row] == (expected != prompt_input_ids(hf, whole, query, passage))
    assert "token_type_ids" not in batch.tensors
    assert batch.truncated.any() == (max_length < 1024) and not batch.truncated[-1]


@pytest.mark.parametrize("max_length", [8192, 60, 30])
def test_mxbai_rerank_v2_layout_matches_its_published_code(tmp_path: Path, max_length: int) -> None:
    from crossrank.export.causal_layouts import mxbai_template
    from crossrank.export.reference import prompt_input_ids
    from tests.model_builders import tiny_mxbai_rerank_v2

    hf = AutoTokenizer.from_pretrained(tiny_mxbai_rerank_v2(tmp_path / "mxbai"))
    settings = TokenizerSettings(max_length=max_length, pad_token_id=hf.pad_token_id,
                                 model_input_names=("input_ids", "attention_mask"), prompt=mxbai_template(max_length))
    tokenizer = PairTokenizer(Tokenizer.from_str(hf.backend_tokenizer.to_str()), settings)
    pairs = [*pairs_with_long_documents(8, long_words=100), (" ".join(["alpha"] * 60), "short"), ("q", "d")]
    batch = tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs])
    for row, (query, passage) in enumerate(pairs):
        expected = prompt_input_ids(hf, settings, query, passage)
        assert list(batch.tensors["input_ids"][row][batch.tensors["attention_mask"][row] == 1]) == expected
        assert hf.decode(expected).startswith("<|im_start|>system\nYou are Qwen")
        assert hf.decode(expected).endswith("Relevance:<|im_end|>\n<|im_start|>assistant\n")
    assert batch.truncated.any() == (max_length < 8192) and not batch.truncated[-1]
    # a request's instruction goes on a line of its own before the query
    instructed = tokenizer.encode(["q"], ["d"], instruction="find rivers")
    ids = instructed.tensors["input_ids"][0][instructed.tensors["attention_mask"][0] == 1]
    assert "user\ninstruction: find rivers\nquery: q\ndocument: d\n" in hf.decode(ids)


@pytest.mark.parametrize("max_length", [64, 24])
def test_document_end_is_where_the_kept_tokens_end(minilm_dir: Path, max_length: int) -> None:
    # The document's text up to `document_end`, paired with the query and not truncated, is exactly what the
    # truncated pair kept: the gateway cuts chunks there.
    tokenizer, hf = _pair_tokenizer(minilm_dir, max_length)
    pairs = [*pairs_with_long_documents(8), ("q", "Ünïcödé café 東京 🎉 " * 30), ("short", "short document")]
    texts, docs = [a for a, _ in pairs], [b for _, b in pairs]
    batch = tokenizer.encode(texts, docs)
    for (text, doc), tokens, end in zip(pairs, batch.num_tokens, batch.document_end):
        if tokens <= max_length:
            assert end == len(doc)
            continue
        kept = hf(text, doc, truncation="longest_first", max_length=max_length)["input_ids"]
        if end == len(doc):  # only the query was cut: the whole document is in the window
            assert hf(text, doc, truncation="only_first", max_length=max_length)["input_ids"] == kept
            continue
        assert 0 < end and hf(text, doc[:end], truncation="only_first", max_length=max_length)["input_ids"] == kept


def test_longest_first_lengths_are_the_librarys() -> None:
    from tokenizers import models, pre_tokenizers, processors

    from crossrank.triton_models.pair_tokenizer import longest_first

    vocabulary = {f"w{i}": i for i in range(40)} | {"[UNK]": 40, "[CLS]": 41, "[SEP]": 42}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 41), ("[SEP]", 42)])
    for max_length in (10, 11, 16):
        truncating = Tokenizer.from_str(tokenizer.to_str())
        truncating.enable_truncation(max_length, strategy="longest_first")
        for a in range(25):
            for b in range(25):
                first, second = (tokenizer.encode(" ".join(f"w{i}" for i in range(n)), add_special_tokens=False)
                                 for n in (a, b))
                joined = truncating.post_process(first, second, add_special_tokens=True)
                kept_second = joined.sequence_ids.count(1)
                assert longest_first(a, b, max_length - 3) == (len(joined.ids) - 3 - kept_second, kept_second)


@pytest.mark.parametrize("max_length", [64, 20])
def test_a_request_may_truncate_on_the_left_as_the_library_does(minilm_dir: Path, max_length: int) -> None:
    # TEI's `truncation_direction: Left`: the same ids as the model's tokenizer with truncation_side="left".
    tokenizer, hf = _pair_tokenizer(minilm_dir, max_length)
    pairs = [*pairs_with_long_documents(8), ("q", "d")]
    texts, docs = [a for a, _ in pairs], [b for _, b in pairs]
    batch = tokenizer.encode(texts, docs, truncation_side="left")
    hf.truncation_side = "left"
    reference = hf(texts, docs, padding=True, truncation="longest_first", max_length=max_length,
                   return_tensors="np")
    for name, expected in reference.items():
        np.testing.assert_array_equal(batch.tensors[name], expected, err_msg=name)
    right = tokenizer.encode(texts, docs)
    assert not np.array_equal(right.tensors["input_ids"], batch.tensors["input_ids"])


@pytest.mark.parametrize("side", ["right", "left"])
def test_max_document_tokens_cuts_each_document_first(minilm_dir: Path, side: str) -> None:
    # Cohere's `max_tokens_per_doc`: each document keeps its first (left: last) N tokens, then pairs as usual.
    tokenizer, hf = _pair_tokenizer(minilm_dir, 512)
    pairs = [*pairs_with_long_documents(6), ("q", "short document")]
    texts, docs = [a for a, _ in pairs], [b for _, b in pairs]
    batch = tokenizer.encode(texts, docs, truncation_side=side, max_document_tokens=5)
    for row, ((text, doc), end) in enumerate(zip(pairs, batch.document_end)):
        own = hf(doc, add_special_tokens=False)["input_ids"]
        kept = own[:5] if side == "right" else own[-5:]
        ids = batch.tensors["input_ids"][row][batch.tensors["attention_mask"][row] == 1].tolist()
        assert ids[-len(kept) - 1:-1] == kept
        assert batch.num_tokens[row] == len(hf(text, add_special_tokens=False)["input_ids"]) + len(kept) + 3
        if len(own) <= 5:
            assert end == len(doc)
        elif side == "right":
            assert hf(doc[:end], add_special_tokens=False)["input_ids"] == kept
        else:
            assert hf(doc[end:], add_special_tokens=False)["input_ids"] == kept
