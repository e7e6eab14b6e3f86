"""Causal-LM rerankers: the pair layout told from the checkpoint (sentence-transformers' chat-template layout,
bge-reranker-v2-gemma's), reproduced token for token, and refused when it cannot be told."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoTokenizer

from crossrank.export import formats as causal_layouts
from crossrank.export.exporter import ExportError, ExportOptions, export
from crossrank.triton_models.pair_tokenizer import PairTokenizer
from tests.model_builders import QWEN3_RERANKER_TEMPLATE, pairs_with_long_documents, tiny_qwen3_reranker

MAX_LENGTH = 192  # the template takes about 100 tokens: long documents are cut, and the suffix restored


@pytest.mark.parametrize("engine", ["onnx-python", "torch-python"])
def test_sentence_transformers_layout_needs_no_flag_and_scores_as_its_cross_encoder(tmp_path: Path,
                                                                                   engine: str) -> None:
    directory = tiny_qwen3_reranker(tmp_path / "qwen3", true_false=("1", "0"))  # custom true/false tokens
    report = export(ExportOptions(source=str(directory), name="q", repository=tmp_path / "repo", engine=engine,
                                  max_length=MAX_LENGTH))
    assert report.max_abs_diff <= 1e-4 and report.info.labels == ("1",)
    # crossrank's tokenizer gives the CrossEncoder's own input ids, over-long pairs included (restored suffix).
    encoder = CrossEncoder(str(directory), device="cpu", max_length=MAX_LENGTH)
    pairs = pairs_with_long_documents(12, long_words=300)
    ours = PairTokenizer.from_directory(tmp_path / "repo" / "q_tokenizer" / "1").encode(
        [a for a, _ in pairs], [b for _, b in pairs])
    theirs = encoder.preprocess(pairs)
    assert (ours.num_tokens > MAX_LENGTH).any() and (ours.num_tokens < MAX_LENGTH).any()
    for i in range(len(pairs)):
        mine = ours.tensors["input_ids"][i][ours.tensors["attention_mask"][i] == 1].tolist()
        row = theirs["input_ids"][i][theirs["attention_mask"][i] == 1].tolist()
        assert mine == row, f"pair {i}"
    # The score is the log-odds of "1" over "0" (the saved LogitScore), not "yes" over "no".
    scores = encoder.predict(pairs[:4], activation_fn=torch.nn.Identity())
    default = CrossEncoder(str(tmp_path / "qwen3-hf"), device="cpu", max_length=MAX_LENGTH)
    assert np.max(np.abs(scores - default.predict(pairs[:4], activation_fn=torch.nn.Identity()))) > 1e-3


def test_a_causal_lm_whose_layout_cannot_be_told_is_refused_naming_the_option(tmp_path: Path) -> None:
    directory = tiny_qwen3_reranker(tmp_path / "bare", chat_template=None)
    with pytest.raises(ExportError, match="--layout"):
        export(ExportOptions(source=str(directory), name="b", repository=tmp_path / "repo"))
    with pytest.raises(ExportError, match=r"query.*document"):
        export(ExportOptions(source=str(directory), name="b", repository=tmp_path / "repo",
                             layout="sentence-transformers"))
    assert not (tmp_path / "repo").exists()


def test_a_template_that_changes_the_texts_is_not_a_pair_layout(tmp_path: Path) -> None:
    # Contents trimmed by the template cannot be placed verbatim: no layout is inferred from it.
    trimming = QWEN3_RERANKER_TEMPLATE.replace("| first }}", "| first | trim }}")
    assert trimming != QWEN3_RERANKER_TEMPLATE
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3_reranker(tmp_path / "q"))
    assert causal_layouts.chat_layout(tokenizer) is not None
    tokenizer.chat_template = trimming
    assert causal_layouts.chat_layout(tokenizer) is None
    with pytest.raises(causal_layouts.LayoutError, match="--layout"):
        causal_layouts.determine("auto", "qwen3", tokenizer, "q")


def test_a_shared_prefix_runs_once_with_the_scores_of_the_full_computation(tmp_path: Path) -> None:
    from crossrank.triton_models.causal_lm_score import load_scorer, score_shared_prefix, shared_prefix
    from crossrank.triton_models.torch_encoder import TorchEncoder

    directory = tiny_qwen3_reranker(tmp_path / "raw", chat_template=None)
    report = export(ExportOptions(source=str(directory), name="r", repository=tmp_path / "repo",
                                  engine="torch-python", max_length=MAX_LENGTH, layout="qwen3-reranker"))
    assert report.max_abs_diff <= 1e-4
    tokenizer = PairTokenizer.from_directory(tmp_path / "repo" / "r_tokenizer" / "1")
    hf = str(tmp_path / "repo" / "r_encoder" / "1" / "hf")
    tokens = tuple(AutoTokenizer.from_pretrained(directory).convert_tokens_to_ids(["yes", "no"]))
    query = "which river runs through the capital of france"
    documents = [b for _, b in pairs_with_long_documents(40, long_words=150)]  # some cut to the window
    batch = tokenizer.encode([query] * len(documents), documents)
    ids, mask = (torch.from_numpy(batch.tensors[n]) for n in ("input_ids", "attention_mask"))
    assert shared_prefix(ids, mask.sum(dim=1)) >= 64  # system text, instruction and query
    scorer = load_scorer(hf, tokens).eval()
    with torch.inference_mode():
        full = scorer(ids, mask).numpy()
        reused = score_shared_prefix(scorer, ids, mask, tokens_per_batch=512)
    assert reused is not None and np.max(np.abs(reused.numpy() - full)) <= 1e-4
    # Through the engine's encoder, with reuse and without, requests of both kinds at once.
    others = tokenizer.encode(["a single pair"], documents[:1])  # nothing to share: the usual batched path
    on, off = (TorchEncoder(hf, ["input_ids", "attention_mask"], score_tokens=tokens, prefix_reuse=flag)
               for flag in (True, False))
    for got, expected in zip(on.score([batch.tensors, others.tensors]), off.score([batch.tensors, others.tensors])):
        assert got.shape == expected.shape and np.max(np.abs(got - expected)) <= 1e-4
    # The served encoder's setting: on by default, off with --no-prefix-reuse.
    assert _parameter(tmp_path / "repo" / "r_encoder", "prefix_reuse") == "true"
    export(ExportOptions(source=str(directory), name="f", repository=tmp_path / "repo", engine="torch-python",
                         max_length=MAX_LENGTH, layout="qwen3-reranker", prefix_reuse=False))
    assert _parameter(tmp_path / "repo" / "f_encoder", "prefix_reuse") == "false"


def _parameter(model: Path, key: str) -> str:
    text = (model / "config.pbtxt").read_text()
    found = re.search(rf'key: "{key}"\s*value {{\s*string_value: "([^"]*)"', text)
    assert found, f"{key} not in {model}/config.pbtxt"
    return found.group(1)
