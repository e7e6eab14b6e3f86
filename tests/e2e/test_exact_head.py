"""The exact head through the real Triton and gateway: a tiny model exported in int8 with the exact head ranks
its top_n as the fp32 export of the same model does (same documents, same order, scores within 1e-4), and
says in usage how many documents it re-scored: those exact_head.py's two rounds pick from the int8 and fp32
scores.
(This tiny random model's scores have little spread, so its window holds most documents; the unit tests and
`make bench` show windows smaller than the request.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from crossrank_client import CrossEncoderClient

from crossrank import exact_head
from crossrank.export.exporter import ExportOptions, export
from tests.e2e.server_process import ServerProcess, serving
from tests.model_builders import pairs_with_long_documents

pytestmark = pytest.mark.e2e
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exact_server(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Iterator[ServerProcess]:
    repo = tmp_path_factory.mktemp("exact-head") / "model_repository"
    export(ExportOptions(source=str(tiny_bert_dir), name="tiny-bert", repository=repo))  # fp32
    export(ExportOptions(source=str(tiny_bert_dir), name="tiny-bert-exact", repository=repo, precision="int8",
                         exact_head="on"))
    with serving(repo, tmp_path_factory.mktemp("logs") / "serve.log") as process:
        yield process


@pytest.mark.parametrize("top_n", [1, 3, 10, 0])
def test_the_served_top_n_is_the_fp32_exports(exact_server: ServerProcess, top_n: int) -> None:
    pairs = pairs_with_long_documents(60, long_words=300)
    query, documents = pairs[0][0], [b for _, b in pairs]
    with CrossEncoderClient(exact_server.target, timeout=120) as client:
        models = {m.name: m for m in client.list_models()}
        assert set(models) == {"tiny-bert", "tiny-bert-exact"}  # the fp32 head model is not listed
        assert models["tiny-bert-exact"].exact_head and models["tiny-bert-exact"].head_delta > 0
        assert models["tiny-bert-exact"].precision == "int8" and not models["tiny-bert"].exact_head
        fp32 = client.rerank(query, documents, model="tiny-bert", top_n=top_n, raw_scores=True)
        head = client.rerank(query, documents, model="tiny-bert-exact", top_n=top_n, raw_scores=True)
        fast_alone = client.classify([(query, d) for d in documents], model="tiny-bert-exact", raw_scores=True)
        fp32_all = {r.index: r.score for r in client.rerank(query, documents, model="tiny-bert", raw_scores=True)}
    k = top_n or 10
    assert [r.index for r in head][:k] == [r.index for r in fp32][:k]
    np.testing.assert_allclose([r.score for r in head][:k], [r.score for r in fp32][:k], atol=TOLERANCE)
    assert len(head) == (top_n or len(documents))
    # Classify runs the int8 encoder alone (the same batch as the rerank's): its scores are not fp32's (else
    # this test would prove nothing), and they give the window the rerank re-scored.
    assert fast_alone.usage.rescored == 0
    int8 = np.array([r.score for r in fast_alone], dtype=np.float32)
    assert max(abs(float(int8[i]) - fp32_all[i]) for i in range(len(documents))) > TOLERANCE
    delta = models["tiny-bert-exact"].head_delta
    picked = exact_head.window(int8, k, delta)
    more = exact_head.widen(int8, picked, np.array([fp32_all[i] for i in picked], dtype=np.float32), k, delta)
    assert head.usage.rescored == picked.size + more.size >= k
    assert fp32.usage.rescored == 0 and head.usage.pairs == len(documents)
