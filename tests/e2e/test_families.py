"""Every architecture family from the published cross-encoder lists, as a tiny random model with a
tokenizer of its kind: exports, loads in the real Triton, serves through the gateway, and scores exactly as
sentence-transformers `CrossEncoder.predict` on the same directory (long pairs, so truncation included)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from crossrank_client import CrossEncoderClient, CrossrankClientError
from sentence_transformers import CrossEncoder
from transformers import AutoModelForCausalLM, AutoTokenizer

from crossrank.export.exporter import ExportOptions, export
from crossrank.export.triton_repository import read_config
from crossrank.triton_models.pair_tokenizer import PairTokenizer
from tests.e2e.server_process import ServerProcess
from tests.model_builders import (
    FAMILIES,
    pairs_with_long_documents,
    tiny_bert,
    tiny_family,
    tiny_gemma,
    tiny_mxbai_rerank_v2,
    tiny_qwen3_reranker,
)
from tests.ranking import assert_ranked_like

pytestmark = pytest.mark.e2e
TOLERANCE = 1e-4
NO_TOKEN_TYPES = {"distilbert", "roberta", "xlm-roberta", "modernbert"}
GEMMA_MAX_LENGTH = 96  # small, so that long passages and long queries are truncated
GEMMA_ENGINES = {"gemma": "onnx-python", "gemma_torch": "torch-python"}
QWEN3_MAX_LENGTH = 192  # the chat template takes about 100: long documents are cut and the suffix restored
# sentence-transformers-layout causal rerankers: yes/no on one engine, custom "1"/"0" tokens on the other
QWEN3_MODELS = {"qwen3": ("onnx-python", None), "qwen3_custom_torch": ("torch-python", ("1", "0"))}
MXBAI_ENGINES = {"mxbai": "onnx-python", "mxbai_torch": "torch-python"}  # raw mxbai-rerank-v2 checkpoints
MXBAI_MAX_LENGTH = 160


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    dirs = {family: tiny_family(family, root / family) for family in FAMILIES}
    # An MS MARCO v2-style model whose config names its own activation (Identity: raw logits by default).
    identity = tiny_bert(root / "identity", seed=5)
    config = json.loads((identity / "config.json").read_text())
    config["sentence_transformers"] = {"activation_fn": "torch.nn.modules.linear.Identity"}
    (identity / "config.json").write_text(json.dumps(config))
    dirs["identity"] = identity
    dirs["gemma"] = tiny_gemma(root / "gemma")
    for name, (_, tokens) in QWEN3_MODELS.items():
        dirs[name] = tiny_qwen3_reranker(root / name, true_false=tokens)
    dirs["qwen3_raw"] = tiny_qwen3_reranker(root / "qwen3_raw", chat_template=None)
    dirs["mxbai"] = tiny_mxbai_rerank_v2(root / "mxbai")
    # A sequence classifier saved by sentence-transformers with its own settings: a default prompt, a
    # non-default activation (tanh) and a max length of its own.
    CrossEncoder(str(tiny_bert(root / "prompted-hf", seed=9)), device="cpu", prompts={"query": "query: "},
                 default_prompt_name="query", activation_fn=torch.nn.Tanh(), max_length=40).save(
        str(root / "st_prompted"))
    dirs["st_prompted"] = root / "st_prompted"
    return dirs


@pytest.fixture(scope="module")
def family_server(family_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    repo = tmp_path_factory.mktemp("family-repo") / "repo"
    for name, directory in family_dirs.items():
        if name not in ("gemma", "qwen3_raw", "mxbai") and name not in QWEN3_MODELS:
            export(ExportOptions(source=str(directory), name=name, repository=repo))
    for name, engine in GEMMA_ENGINES.items():
        export(ExportOptions(source=str(family_dirs["gemma"]), name=name, repository=repo, engine=engine,
                             max_length=GEMMA_MAX_LENGTH))
    for name, (engine, _) in QWEN3_MODELS.items():  # no layout flag: told from the checkpoint
        export(ExportOptions(source=str(family_dirs[name]), name=name, repository=repo, engine=engine,
                             max_length=QWEN3_MAX_LENGTH))
    export(ExportOptions(source=str(family_dirs["qwen3_raw"]), name="qwen3_raw", repository=repo,
                         engine="torch-python", max_length=QWEN3_MAX_LENGTH, layout="qwen3-reranker"))
    for name, engine in MXBAI_ENGINES.items():
        export(ExportOptions(source=str(family_dirs["mxbai"]), name=name, repository=repo, engine=engine,
                             max_length=MXBAI_MAX_LENGTH, layout="mxbai-rerank-v2"))
    server = ServerProcess(["--repository", str(repo)], log=repo.parent / "serve.log")
    server.repository = repo  # type: ignore[attr-defined]
    try:
        server.wait_serving()
        yield server
    finally:
        server.terminate()


@pytest.mark.parametrize("family", FAMILIES)
def test_family_matches_sentence_transformers(family_server: ServerProcess, family_dirs: dict[str, Path],
                                              family: str) -> None:
    directory = family_dirs[family]
    pairs = pairs_with_long_documents(50, long_words=200)
    reference = np.asarray(CrossEncoder(str(directory), device="cpu", activation_fn=torch.nn.Identity())
                           .predict(pairs), dtype=np.float64)
    with CrossEncoderClient(family_server.target) as client:
        raw = np.array([r.score for r in client.classify(pairs, model=family, raw_scores=True)])
        ranked = client.rerank(pairs[0][0], [b for _, b in pairs], model=family, raw_scores=True)
    assert np.max(np.abs(raw - reference)) <= TOLERANCE
    expected = np.asarray(CrossEncoder(str(directory), device="cpu", activation_fn=torch.nn.Identity())
                          .predict([(pairs[0][0], b) for _, b in pairs]))
    assert_ranked_like([r.index for r in ranked], expected, TOLERANCE)

    # Inputs follow the model; the tokenizer model reproduces the model's own tokenizer, truncation included.
    repo: Path = family_server.repository  # type: ignore[attr-defined]
    encoder_inputs = {i.name for i in read_config(repo / f"{family}_encoder").input}
    assert ("token_type_ids" in encoder_inputs) == (family not in NO_TOKEN_TYPES)
    ours = PairTokenizer.from_directory(repo / f"{family}_tokenizer" / "1").encode(
        [a for a, _ in pairs], [b for _, b in pairs]).tensors
    theirs = AutoTokenizer.from_pretrained(directory)([a for a, _ in pairs], [b for _, b in pairs], padding=True,
                                                      truncation="longest_first", max_length=64, return_tensors="np")
    for name in encoder_inputs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=f"{family} {name}")


def test_model_named_activation_is_the_default(family_server: ServerProcess, family_dirs: dict[str, Path]) -> None:
    pairs = pairs_with_long_documents(10)
    reference = CrossEncoder(str(family_dirs["identity"]), device="cpu").predict(pairs)  # its own default
    with CrossEncoderClient(family_server.target) as client:
        served = [r.score for r in client.classify(pairs, model="identity")]
        models = {m.name: m for m in client.list_models()}
    np.testing.assert_allclose(served, reference, atol=TOLERANCE)
    assert models["identity"].task == "rerank"


def _model_card_scores(directory: Path, pairs: list[tuple[str, str]], max_length: int) -> np.ndarray:
    """bge-reranker-v2-gemma's model-card code (its `get_inputs` and the "Yes" logit at the last position),
    run one pair at a time so that no padding is involved."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    prompt = ("Given a query A and a passage B, determine whether the passage contains an answer to the query "
              "by providing a prediction of either 'Yes' or 'No'.")
    prompt_inputs = tokenizer(prompt, return_tensors=None, add_special_tokens=False)["input_ids"]
    sep_inputs = tokenizer("\n", return_tensors=None, add_special_tokens=False)["input_ids"]
    yes_loc = tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    scores = []
    for query, passage in pairs:
        query_inputs = tokenizer(f"A: {query}", return_tensors=None, add_special_tokens=False,
                                 max_length=max_length * 3 // 4, truncation=True)
        passage_inputs = tokenizer(f"B: {passage}", return_tensors=None, add_special_tokens=False,
                                   max_length=max_length, truncation=True)
        item = tokenizer.prepare_for_model(
            [tokenizer.bos_token_id] + query_inputs["input_ids"], sep_inputs + passage_inputs["input_ids"],
            truncation="only_second", max_length=max_length, padding=False, return_attention_mask=False,
            return_token_type_ids=False, add_special_tokens=False)
        ids = torch.tensor([item["input_ids"] + sep_inputs + prompt_inputs])
        with torch.no_grad():
            scores.append(float(model(input_ids=ids).logits[0, -1, yes_loc]))
    return np.array(scores)


@pytest.mark.parametrize("name", sorted(GEMMA_ENGINES))
def test_gemma_causal_lm_reranker_scores_as_its_model_card(family_server: ServerProcess,
                                                           family_dirs: dict[str, Path], name: str) -> None:
    pairs = pairs_with_long_documents(30, long_words=200)
    pairs.append((" ".join(["query"] * 90), "a long query is cut to three quarters of the max length"))
    reference = _model_card_scores(family_dirs["gemma"], pairs, GEMMA_MAX_LENGTH)
    with CrossEncoderClient(family_server.target) as client:
        raw = np.array([r.score for r in client.classify(pairs, model=name, raw_scores=True)])
        ranked = client.rerank(pairs[0][0], [b for _, b in pairs], model=name, raw_scores=True)
        scores = [r.score for r in client.classify(pairs[:5], model=name)]
        model = {m.name: m for m in client.list_models()}[name]
    assert np.max(np.abs(raw - reference)) <= TOLERANCE
    expected = _model_card_scores(family_dirs["gemma"], [(pairs[0][0], b) for _, b in pairs], GEMMA_MAX_LENGTH)
    assert_ranked_like([r.index for r in ranked], expected, TOLERANCE)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-reference[:5])), atol=TOLERANCE)  # sigmoid by default
    assert model.task == "rerank" and list(model.labels) == ["Yes"]
    assert model.max_length > GEMMA_MAX_LENGTH  # the pair budget plus the prompt


@pytest.mark.parametrize("name", sorted(QWEN3_MODELS))
def test_sentence_transformers_causal_reranker_scores_as_its_cross_encoder(
        family_server: ServerProcess, family_dirs: dict[str, Path], name: str) -> None:
    pairs = pairs_with_long_documents(30, long_words=200)
    encoder = CrossEncoder(str(family_dirs[name]), device="cpu", max_length=QWEN3_MAX_LENGTH)
    reference = np.asarray(encoder.predict(pairs, activation_fn=torch.nn.Identity()), dtype=np.float64)
    with CrossEncoderClient(family_server.target) as client:
        raw = np.array([r.score for r in client.classify(pairs, model=name, raw_scores=True)])
        ranked = client.rerank(pairs[0][0], [b for _, b in pairs], model=name)
        model = {m.name: m for m in client.list_models()}[name]
    assert np.max(np.abs(raw - reference)) <= TOLERANCE
    expected = encoder.predict([(pairs[0][0], b) for _, b in pairs])  # its own activation (sigmoid)
    assert_ranked_like([r.index for r in ranked], expected, TOLERANCE)
    np.testing.assert_allclose(sorted(r.score for r in ranked), sorted(expected), atol=TOLERANCE)
    assert model.task == "rerank" and model.max_length == QWEN3_MAX_LENGTH
    assert list(model.labels) == (["1"] if QWEN3_MODELS[name][1] else ["yes"])


def _qwen3_model_card_scores(directory: Path, pairs: list[tuple[str, str]], max_length: int,
                             task: str = "Given a web search query, retrieve relevant passages that answer the query",
                             ) -> np.ndarray:
    """Qwen3-Reranker's model-card code ("Usage with Transformers"): its prefix, `format_instruction`,
    `process_inputs` and `compute_logits` (softmax over the "no" and "yes" logits), one pair at a time."""
    tokenizer = AutoTokenizer.from_pretrained(directory, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    token_false_id, token_true_id = tokenizer.convert_tokens_to_ids("no"), tokenizer.convert_tokens_to_ids("yes")
    prefix = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
              "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
    scores = []
    for query, doc in pairs:
        text = f"<Instruct>: {task}\n<Query>: {query}\n<Document>: {doc}"
        inputs = tokenizer([text], padding=False, truncation="longest_first", return_attention_mask=False,
                           max_length=max_length - len(prefix_tokens) - len(suffix_tokens))
        ids = torch.tensor([prefix_tokens + inputs["input_ids"][0] + suffix_tokens])
        with torch.no_grad():
            batch_scores = model(input_ids=ids).logits[:, -1, :]
        stacked = torch.stack([batch_scores[:, token_false_id], batch_scores[:, token_true_id]], dim=1)
        scores.append(float(torch.nn.functional.log_softmax(stacked, dim=1)[:, 1].exp()[0]))
    return np.array(scores)


def test_raw_qwen3_reranker_scores_as_its_model_card(family_server: ServerProcess,
                                                     family_dirs: dict[str, Path]) -> None:
    pairs = pairs_with_long_documents(30, long_words=200)
    reference = _qwen3_model_card_scores(family_dirs["qwen3_raw"], pairs, QWEN3_MAX_LENGTH)
    with CrossEncoderClient(family_server.target) as client:
        served = np.array([r.score for r in client.classify(pairs, model="qwen3_raw")])
        ranked = client.rerank(pairs[0][0], [b for _, b in pairs], model="qwen3_raw")
    assert np.max(np.abs(served - reference)) <= TOLERANCE
    expected = _qwen3_model_card_scores(family_dirs["qwen3_raw"], [(pairs[0][0], b) for _, b in pairs],
                                        QWEN3_MAX_LENGTH)
    assert_ranked_like([r.index for r in ranked], expected, TOLERANCE)


def test_an_instruction_changes_scores_as_the_model_card_does(family_server: ServerProcess,
                                                             family_dirs: dict[str, Path]) -> None:
    pairs = pairs_with_long_documents(8, long_words=200)
    task = "Given a question, find the passage that names a city"
    reference = _qwen3_model_card_scores(family_dirs["qwen3_raw"], pairs, QWEN3_MAX_LENGTH, task)
    default = _qwen3_model_card_scores(family_dirs["qwen3_raw"], pairs, QWEN3_MAX_LENGTH)
    assert np.max(np.abs(reference - default)) > 1e-3  # the instruction matters to this model
    with CrossEncoderClient(family_server.target) as client:
        served = np.array([r.score for r in client.classify(pairs, model="qwen3_raw", instruction=task)])
        ranked = client.rerank(pairs[0][0], [b for _, b in pairs], model="qwen3_raw", instruction=task)
        models = {m.name: m for m in client.list_models()}
        with pytest.raises(CrossrankClientError) as unsupported:
            client.rerank("q", ["d"], model="qwen3", instruction=task)
        with pytest.raises(CrossrankClientError) as too_long:
            client.rerank("q", ["d"], model="qwen3_raw", instruction="x" * 4097)
    assert np.max(np.abs(served - reference)) <= TOLERANCE
    expected = _qwen3_model_card_scores(family_dirs["qwen3_raw"], [(pairs[0][0], b) for _, b in pairs],
                                        QWEN3_MAX_LENGTH, task)
    assert_ranked_like([r.index for r in ranked], expected, TOLERANCE)
    assert models["qwen3_raw"].default_instruction.startswith("Given a web search query")
    assert models["qwen3"].default_instruction == "" and not models["qwen3"].accepts_instruction
    assert models["qwen3_raw"].accepts_instruction
    assert unsupported.value.reason == "INSTRUCTION_UNSUPPORTED"
    assert [v.field for v in unsupported.value.field_violations] == ["instruction"]
    assert too_long.value.reason == "TEXT_TOO_LONG"


def test_sentence_transformers_settings_of_a_saved_cross_encoder(family_server: ServerProcess,
                                                                family_dirs: dict[str, Path]) -> None:
    # Its default prompt goes before each query, its max length (40) cuts pairs, its activation is tanh.
    encoder = CrossEncoder(str(family_dirs["st_prompted"]), device="cpu")
    pairs = pairs_with_long_documents(20, long_words=100)
    with CrossEncoderClient(family_server.target) as client:
        served = np.array([r.score for r in client.classify(pairs, model="st_prompted")])
        raw = np.array([r.score for r in client.classify(pairs, model="st_prompted", raw_scores=True)])
        model = {m.name: m for m in client.list_models()}["st_prompted"]
    np.testing.assert_allclose(served, encoder.predict(pairs), atol=TOLERANCE)
    np.testing.assert_allclose(raw, encoder.predict(pairs, activation_fn=torch.nn.Identity()), atol=TOLERANCE)
    assert np.max(np.abs(raw - encoder.predict(pairs, prompt="", activation_fn=torch.nn.Identity()))) > 1e-5
    assert model.max_length == 40


def _mxbai_published_scores(directory: Path, pairs: list[tuple[str, str]], max_length: int,
                            instruction: str | None = None) -> np.ndarray:
    """mxbai-rerank-v2's published code (`MxbaiRerankV2`: `prepare_predefined_inputs`, `prepare_inputs`,
    `forward`): the whole batch, padded on the left to a multiple of 8; logit("1") - logit("0")."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    sep = "\n"
    task = ("You are a search relevance expert who evaluates how well documents match search queries. For each "
            "query-document pair, carefully analyze the semantic relationship between them, then provide your "
            "binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:")
    prefix = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\n")
    suffix = "<|im_end|>\n<|im_start|>assistant\n"

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, return_tensors=None, add_special_tokens=False)["input_ids"])

    yes_loc, no_loc = ids("1")[0], ids("0")[0]
    task_ids, sep_ids, prefix_ids, suffix_ids = ids(task), ids(sep), ids(prefix), ids(suffix)
    predefined = len(prefix_ids) + len(task_ids) + len(suffix_ids) + len(sep_ids)
    model_max = tokenizer.model_max_length
    max_length = min(max_length, model_max - predefined)
    items = []
    for query, document in pairs:
        query_prompt = f"query: {query}"
        if instruction:
            query_prompt = "".join([f"instruction: {instruction}", sep, query_prompt])
        query_ids = tokenizer(query_prompt, return_tensors=None, add_special_tokens=False,
                              max_length=max_length * 3 // 4, truncation=True)["input_ids"]
        doc_max = min(model_max - len(query_ids) - predefined, max_length)
        document_ids = tokenizer(f"document: {document}", return_tensors=None, add_special_tokens=False,
                                 max_length=doc_max, truncation=True)["input_ids"]
        item = tokenizer.prepare_for_model(query_ids, sep_ids + document_ids, truncation="only_second",
                                           max_length=max_length, padding=False, return_attention_mask=False,
                                           return_token_type_ids=False, add_special_tokens=False)
        item["input_ids"] = prefix_ids + item["input_ids"] + sep_ids + task_ids + suffix_ids
        item["attention_mask"] = [1] * len(item["input_ids"])
        items.append(item)
    batch = tokenizer.pad(items, padding="longest", pad_to_multiple_of=8, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return (logits[:, -1, yes_loc] - logits[:, -1, no_loc]).numpy()


@pytest.mark.parametrize("name", list(MXBAI_ENGINES))
def test_raw_mxbai_rerank_v2_scores_as_its_published_code(family_server: ServerProcess,
                                                         family_dirs: dict[str, Path], name: str) -> None:
    pairs = pairs_with_long_documents(24, long_words=150)  # long documents cut, one long query cut too
    pairs[3] = (" ".join(["alpha query"] * 80), pairs[3][1])
    task = "Find the passage that names a river"
    reference = _mxbai_published_scores(family_dirs["mxbai"], pairs, MXBAI_MAX_LENGTH)
    instructed = _mxbai_published_scores(family_dirs["mxbai"], pairs, MXBAI_MAX_LENGTH, task)
    assert np.max(np.abs(reference - instructed)) > 1e-3  # the instruction matters to this model
    with CrossEncoderClient(family_server.target) as client:
        served = np.array([r.score for r in client.classify(pairs, model=name, raw_scores=True)])
        default = np.array([r.score for r in client.classify(pairs, model=name)])
        with_task = np.array([r.score for r in client.classify(pairs, model=name, raw_scores=True,
                                                                  instruction=task)])
        ranked = client.rerank(pairs[0][0], [b for _, b in pairs], model=name, instruction=task)
        model = {m.name: m for m in client.list_models()}[name]
        # Truncation forbidden: a pair within the max length is scored though the template's fixed tokens
        # take it past that length; a cut one is refused.
        fitting = ("a query", _words_within(family_dirs["mxbai"], MXBAI_MAX_LENGTH - 20))
        whole = client.classify([fitting], model=name, raw_scores=True, truncate=False).results[0].score
        with pytest.raises(CrossrankClientError) as cut:
            client.classify(pairs, model=name, truncate=False)
    assert abs(whole - _mxbai_published_scores(family_dirs["mxbai"], [fitting], MXBAI_MAX_LENGTH)[0]) <= TOLERANCE
    assert cut.value.reason == "INPUT_TOO_LONG"
    assert np.max(np.abs(served - reference)) <= TOLERANCE
    assert np.max(np.abs(default - 1 / (1 + np.exp(-reference)))) <= TOLERANCE
    assert np.max(np.abs(with_task - instructed)) <= TOLERANCE
    expected = _mxbai_published_scores(family_dirs["mxbai"], [(pairs[0][0], b) for _, b in pairs],
                                       MXBAI_MAX_LENGTH, task)
    assert_ranked_like([r.index for r in ranked], expected, TOLERANCE)
    assert model.accepts_instruction and model.default_instruction == "" and list(model.labels) == ["1"]


def _words_within(directory: Path, tokens: int) -> str:
    """A document whose `query: a query` and `document: ...` lines take about `tokens` tokens together."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    words: list[str] = []
    while len(tokenizer(f"query: a query\ndocument: {' '.join([*words, 'alpha'])}")["input_ids"]) <= tokens:
        words.append("alpha")
    return " ".join(words)
