"""The gateway core over the fake backend: validation, activation, ordering, top_n, usage, routing."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from crossrank.gateway.core.errors import CrossrankError, ModelNotFoundError
from crossrank.gateway.core.scoring import ClassifyQuery, CrossEncoderCore, RerankQuery
from crossrank.gateway.core.validation import Limits
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


async def test_large_requests_are_split_and_reassembled_identically() -> None:
    # The Triton backend itself splits (its client is replaced by a recorder of what it sends): pieces of the
    # model's Triton batch size, sent concurrently, reassembled in order.
    from crossrank.gateway.backend.base import ScoredPairs
    from crossrank.gateway.backend.triton import TritonBackend

    backend = TritonBackend("127.0.0.1:1")  # never connected: _infer is replaced below
    sent: list[list[str]] = []

    async def infer(model: object, texts: list[str], pairs: list[str], timeout: float | None) -> ScoredPairs:
        sent.append(list(pairs))
        await asyncio.sleep(0.01 * (3 - len(sent)))  # pieces finish out of order
        logits = [fake_logits(a, b, 1) for a, b in zip(texts, pairs)]
        return ScoredPairs(np.asarray(logits, dtype=np.float32), np.full(len(texts), 7, dtype=np.int64))

    backend._infer = infer  # type: ignore[method-assign]
    big = CrossEncoderCore(backend, Limits())  # type: ignore[arg-type]
    big._models = {RERANKER.name: RERANKER}  # RERANKER's Triton batch size is 4
    docs = [f"doc {i} paris" * (i % 3 + 1) for i in range(10)]
    out = await big.rerank(RerankQuery(model=RERANKER.name, query="paris", documents=docs))
    assert [len(piece) for piece in sent] == [4, 4, 2]
    assert [d for piece in sent for d in piece] == docs
    expected = {i: fake_logits("paris", d, 1)[0] for i, d in enumerate(docs)}
    assert {r.index: r.score for r in out.results} == pytest.approx(
        {i: 1 / (1 + np.exp(-v)) for i, v in expected.items()}, abs=1e-6)
    await backend.close()


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
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.reason == reason
    assert [v.field for v in caught.value.violations] == [field]


async def test_unknown_model_is_not_found_and_lists_served_models() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        await core().rerank(RerankQuery(model="nope", query="q", documents=["d"]))
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
    assert RERANKER.name in caught.value.message


async def test_rerank_on_a_multi_label_classifier_is_refused() -> None:
    with pytest.raises(CrossrankError) as caught:
        await core().rerank(RerankQuery(model=NLI.name, query="q", documents=["d"]))
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "WRONG_TASK")


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

    async def unloaded(model, texts, pairs, timeout):  # type: ignore[no-untyped-def]
        if model.name == NLI.name:
            raise ModelGoneError(model.name)
        return await real_score(model, texts, pairs, timeout)

    backend.score = unloaded  # type: ignore[method-assign]
    with pytest.raises(ModelGoneError) as gone_now:
        await gone.classify(ClassifyQuery(model=NLI.name, pairs=[("a", "b")]))
    assert gone_now.value.code == grpc.StatusCode.UNAVAILABLE  # retryable, not INTERNAL
    assert NLI.name not in gone.model_names()  # forgotten until Triton lists it again
    backend._models = [RERANKER]  # Triton's list no longer has it either
    with pytest.raises(ModelNotFoundError) as caught:
        await gone.classify(ClassifyQuery(model=NLI.name, pairs=[("a", "b")]))
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
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
