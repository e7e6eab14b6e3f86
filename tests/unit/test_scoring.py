"""The gateway core over the fake backend: validation, activation, ordering, top_n, usage, routing."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from crossrank.gateway.core.errors import CrossrankError, ErrorCode, ModelNotFoundError
from crossrank.gateway.core.scoring import ClassifyQuery, CrossEncoderCore, RerankQuery
from crossrank.gateway.core.validation import Limits
from crossrank.triton_contract import too_long_message
from tests.fakes import NLI, RERANKER, FakeBackend, fake_logits

DOCS = ["paris is in france", "bananas", "paris france capital paris", "a city"]


def core(**limits: int) -> CrossEncoderCore:
    return CrossEncoderCore(FakeBackend(), Limits(**limits), default_model=RERANKER.name)


async def test_rerank_sorts_by_descending_sigmoid_score() -> None:
    out = await core().rerank(RerankQuery(model="", query="paris france", documents=DOCS))
    logits = np.array([fake_logits("paris france", d, 1)[0] for d in DOCS])
    expected = 1 / (1 + np.exp(-logits))
    assert [r.index for r in out.results] == list(np.argsort(-expected, kind="stable"))
    np.testing.assert_allclose([r.score for r in out.results], np.sort(expected)[::-1], rtol=1e-6)
    assert out.model == RERANKER.name
    assert all(r.document is None for r in out.results)


async def test_top_n_raw_scores_and_documents() -> None:
    out = await core().rerank(RerankQuery(model="", query="paris france", documents=DOCS, top_n=2,
                                          raw_scores=True, return_documents=True))
    assert len(out.results) == 2
    best = out.results[0]
    assert best.document == DOCS[best.index]
    assert best.score == pytest.approx(fake_logits("paris france", DOCS[best.index], 1)[0])
    assert len((await core().rerank(RerankQuery(model="", query="q", documents=DOCS, top_n=99))).results) == 4


class _TritonRecorder:
    """Stands in for tritonclient's aio client: keeps what each infer call sent, answers like the ensemble
    (fake logits, 7 tokens a pair, nothing cut), finishing calls out of order."""

    def __init__(self, too_long_at: int | None = None) -> None:
        self.sent: list[tuple[list[bytes], list[str], dict]] = []
        self._too_long_at = too_long_at

    async def infer(self, model_name, inputs, outputs=None, client_timeout=None, parameters=None,  # type: ignore[no-untyped-def]
                    request_id=""):
        from tritonclient.utils import InferenceServerException

        texts, pairs = inputs
        texts_raw = _decode(texts)
        pairs_raw = [p.decode() for p in _decode(pairs)]
        self.sent.append((texts_raw, pairs_raw, dict(parameters or {})))
        piece = len(self.sent)
        await asyncio.sleep(0.01 * (3 - piece))
        if self._too_long_at is not None and piece == 2:
            raise InferenceServerException("in ensemble: tokenizer: " + too_long_message(self._too_long_at, 99, 32),
                                           status="StatusCode.INVALID_ARGUMENT")
        query = (parameters or {}).get("crossrank_query")
        logits = np.asarray([fake_logits(query, b, 1) for b in pairs_raw], dtype=np.float32)
        answers = {"logits": logits, "num_tokens": np.full((len(pairs_raw), 1), 7, dtype=np.int64),
                   "document_end": np.asarray([[len(b)] for b in pairs_raw], dtype=np.int64)}
        return type("Result", (), {"as_numpy": staticmethod(answers.get)})()

    async def close(self) -> None:
        pass


def _decode(tensor: object) -> list[bytes]:
    """The BYTES rows of a tritonclient InferInput (4-byte little-endian length, then the bytes)."""
    raw, rows, at = tensor._raw_content, [], 0  # type: ignore[attr-defined]
    while at < len(raw):
        size = int.from_bytes(raw[at:at + 4], "little")
        rows.append(raw[at + 4:at + 4 + size])
        at += 4 + size
    return rows


async def test_large_requests_are_split_and_the_query_sent_once_per_piece() -> None:
    # The Triton backend itself splits (its client is replaced by a recorder of what it sends): pieces of the
    # model's Triton batch size, sent concurrently, reassembled in order; the query travels as one parameter.
    from crossrank.gateway.backend.triton import TritonBackend

    backend = TritonBackend("127.0.0.1:1")  # never connected: its client is replaced below
    await backend.close()
    recorder = _TritonRecorder()
    backend._client = recorder  # type: ignore[assignment]
    big = CrossEncoderCore(backend, Limits())  # type: ignore[arg-type]
    big._models = {RERANKER.name: RERANKER}  # RERANKER's Triton batch size is 4
    docs = [f"doc {i} paris" * (i % 3 + 1) for i in range(10)]
    out = await big.rerank(RerankQuery(model=RERANKER.name, query="paris " * 1000, documents=docs))
    assert [len(pairs) for _, pairs, _ in recorder.sent] == [4, 4, 2]
    assert [d for _, pairs, _ in recorder.sent for d in pairs] == docs
    for texts, _, parameters in recorder.sent:
        assert parameters["crossrank_query"] == "paris " * 1000 and set(texts) == {b""}
        assert "crossrank_truncate" not in parameters
    expected = {i: fake_logits("paris " * 1000, d, 1)[0] for i, d in enumerate(docs)}
    assert {r.index: r.score for r in out.results} == pytest.approx(
        {i: 1 / (1 + np.exp(-v)) for i, v in expected.items()}, abs=1e-6)


async def test_a_refusal_from_the_tokenizer_names_the_pair_of_the_whole_request() -> None:
    from crossrank.gateway.backend.triton import TritonBackend

    backend = TritonBackend("127.0.0.1:1")
    await backend.close()
    recorder = _TritonRecorder(too_long_at=1)  # the second piece's second pair: the request's pair 5
    backend._client = recorder  # type: ignore[assignment]
    big = CrossEncoderCore(backend, Limits())  # type: ignore[arg-type]
    big._models = {RERANKER.name: RERANKER}
    with pytest.raises(CrossrankError) as caught:
        await big.rerank(RerankQuery(model=RERANKER.name, query="q", documents=["d"] * 10, truncate=False))
    assert caught.value.reason == "INPUT_TOO_LONG" and caught.value.violations[0].field == "documents[5]"
    assert all(parameters["crossrank_truncate"] is False for _, _, parameters in recorder.sent)


async def test_usage_counts_pairs_and_truncated_tokens() -> None:
    out = await core().rerank(RerankQuery(model="", query="q", documents=["a b", " ".join(["w"] * 40)]))
    assert out.usage.pairs == 2
    assert out.usage.tokens == (1 + 2 + 3) + RERANKER.max_length


async def test_classify_softmax_labels_in_request_order() -> None:
    pairs = [("paris", "paris paris"), ("x", "y z")]
    out = await core().classify(ClassifyQuery(model=NLI.name, pairs=pairs))
    assert len(out.results) == 2
    for (a, b), result in zip(pairs, out.results):
        logits = np.array(fake_logits(a, b, 3))
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert result.label == NLI.labels[int(np.argmax(probs))]
        np.testing.assert_allclose([s for _, s in result.scores], probs, rtol=1e-5)
        assert [label for label, _ in result.scores] == list(NLI.labels)


@pytest.mark.parametrize(("kwargs", "reason", "field"), [
    ({"query": ""}, "EMPTY_QUERY", "query"),
    ({"query": " \t\n"}, "EMPTY_QUERY", "query"),
    ({"documents": []}, "EMPTY_DOCUMENTS", "documents"),
    ({"documents": ["ok", ""]}, "EMPTY_DOCUMENT", "documents[1]"),
    ({"documents": ["d"] * 6}, "TOO_MANY_INPUTS", "documents"),
    ({"documents": ["x" * 101]}, "TEXT_TOO_LONG", "documents[0]"),
    ({"top_n": -1}, "INVALID_TOP_N", "top_n"),
    ({"truncate": False, "documents": ["ok", " ".join(["w"] * 40)]}, "INPUT_TOO_LONG", "documents[1]"),
])
async def test_bad_rerank_input_is_invalid_argument_naming_the_field(kwargs: dict, reason: str, field: str) -> None:
    query = {"model": "", "query": "q", "documents": ["d"], **kwargs}
    with pytest.raises(CrossrankError) as caught:
        await core(max_documents=5, max_text_chars=100).rerank(RerankQuery(**query))
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert caught.value.reason == reason
    assert [v.field for v in caught.value.violations] == [field]


async def test_unknown_model_is_not_found_and_lists_served_models() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        await core().rerank(RerankQuery(model="nope", query="q", documents=["d"]))
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert RERANKER.name in caught.value.message


async def test_rerank_on_a_multi_label_classifier_is_refused() -> None:
    with pytest.raises(CrossrankError) as caught:
        await core().rerank(RerankQuery(model=NLI.name, query="q", documents=["d"]))
    assert (caught.value.code, caught.value.reason) == (ErrorCode.INVALID_ARGUMENT, "WRONG_TASK")


async def test_default_model_falls_back_to_first_name() -> None:
    plain = CrossEncoderCore(FakeBackend(), Limits())
    models, default = await plain.list_models()
    assert default == "fake-nli" == min(m.name for m in models)


async def test_unknown_model_names_refresh_the_model_list_at_most_once_per_interval() -> None:
    backend = FakeBackend(models=())  # a Triton serving nothing (yet): nothing cached to answer from
    asked = 0
    real_models = backend.models

    async def counting_models() -> list:  # type: ignore[type-arg]
        nonlocal asked
        asked += 1
        return await real_models()

    backend.models = counting_models  # type: ignore[method-assign]
    flooded = CrossEncoderCore(backend, Limits(), RERANKER.name)
    for i in range(50):  # with names and without
        with pytest.raises(ModelNotFoundError):
            await flooded.rerank(RerankQuery(model=f"made-up-{i}" if i % 2 else "", query="q", documents=["d"]))
    assert asked == 1  # the first lookup read the list; the other 49 within the interval did not


async def test_a_model_unloaded_behind_the_gateways_back_is_unavailable_then_not_found() -> None:
    from crossrank.gateway.core.errors import ModelGoneError

    backend = FakeBackend()
    gone = CrossEncoderCore(backend, Limits(), RERANKER.name)
    await gone.refresh_models()
    real_score = backend.score

    async def unloaded(model, texts, pairs, timeout, truncate=True, instruction=""):  # type: ignore[no-untyped-def]
        if model.name == NLI.name:
            raise ModelGoneError(model.name)
        return await real_score(model, texts, pairs, timeout, truncate, instruction)

    backend.score = unloaded  # type: ignore[method-assign]
    with pytest.raises(ModelGoneError) as gone_now:
        await gone.classify(ClassifyQuery(model=NLI.name, pairs=[("a", "b")]))
    assert gone_now.value.code == ErrorCode.UNAVAILABLE  # retryable, not INTERNAL
    assert NLI.name not in gone.model_names()  # forgotten until Triton lists it again
    backend._models = [RERANKER]  # Triton's list no longer has it either
    with pytest.raises(ModelNotFoundError) as caught:
        await gone.classify(ClassifyQuery(model=NLI.name, pairs=[("a", "b")]))
    assert caught.value.code == ErrorCode.NOT_FOUND
    await gone.rerank(RerankQuery(model=RERANKER.name, query="q", documents=["d"]))  # the others still work


def test_triton_says_unknown_model_and_the_gateway_hears_model_gone() -> None:
    from tritonclient.utils import InferenceServerException

    from crossrank.gateway.backend.triton import _translate
    from crossrank.gateway.core.errors import BackendError, ModelGoneError

    for message, status in (("Request for unknown model: 'm' is not found", "StatusCode.NOT_FOUND"),
                            ("Request for unknown model: 'm' has no available versions", "StatusCode.UNAVAILABLE")):
        translated = _translate(InferenceServerException(msg=message, status=status), "inference on m", "m")
        assert isinstance(translated, ModelGoneError) and translated.name == "m"
    assert isinstance(_translate(InferenceServerException(msg="boom", status="StatusCode.INTERNAL"), "x", "m"),
                      BackendError)


class _RepositoryIndex:
    """Stands in for tritonclient's aio client at model discovery: two ready ensembles, one exported by an
    older crossrank (no document_end output)."""

    def __init__(self) -> None:
        self._configs = {name: {"platform": "ensemble", "max_batch_size": 8,
                                "parameters": {k: {"string_value": v}
                                               for k, v in replace(RERANKER, name=name).to_parameters().items()},
                                "output": [{"name": n} for n in outputs]}
                         for name, outputs in (("current", ("logits", "num_tokens", "document_end")),
                                               ("older", ("logits", "num_tokens")))}

    async def get_model_repository_index(self, as_json=False, client_timeout=None):  # type: ignore[no-untyped-def]
        return {"models": [{"name": name, "state": "READY"} for name in self._configs]}

    async def get_model_config(self, name, as_json=False, client_timeout=None):  # type: ignore[no-untyped-def]
        return {"config": self._configs[name]}


async def test_an_export_by_an_older_crossrank_is_left_out_with_one_error(
        caplog: pytest.LogCaptureFixture) -> None:
    from crossrank.gateway.backend.triton import TritonBackend

    backend = TritonBackend("127.0.0.1:1")
    await backend.close()
    backend._client = _RepositoryIndex()  # type: ignore[assignment]
    with caplog.at_level("ERROR"):
        first, second = await backend.models(), await backend.models()
    assert [m.name for m in first] == [m.name for m in second] == ["current"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "older" in errors[0] and "document_end" in errors[0]
    assert "crossrank export" in errors[0]
