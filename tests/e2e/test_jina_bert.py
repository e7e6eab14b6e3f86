"""JinaBERT rerankers (jina-reranker-v1-tiny-en, -turbo-en: ALiBi attention, gated feed-forward, remote code)
export on both python-backend engines and serve through the real Triton and gateway with the scores of the
model's own remote code (`AutoModelForSequenceClassification(..., trust_remote_code=True)`), pairs longer than
512 tokens included: ALiBi has no position table, so the max length is the model's configured one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from crossrank_client import CrossEncoderClient
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from crossrank.export.exporter import ExportError, ExportOptions, export
from tests.e2e.server_process import ServerProcess
from tests.model_builders import WORDS, tiny_jina_bert

pytestmark = pytest.mark.e2e
MAX_LENGTH = 1024
ENGINES = {"jina": "onnx-python", "jina-torch": "torch-python"}


def _documents() -> list[str]:
    """Short documents, two between 512 and 1,024 tokens (scored whole), one beyond (truncated)."""
    words = list(WORDS)
    short = [" ".join(words[i:i + 12]) for i in range(0, 24, 4)]
    return [*short, " ".join(words * 20), " ".join(reversed(words * 24)), " ".join(words * 40)]


def test_jina_bert_serves_with_the_scores_of_its_remote_code(tmp_path: Path) -> None:
    model_dir = tiny_jina_bert(tmp_path / "jina", max_length=MAX_LENGTH)
    repo = tmp_path / "repo"
    with pytest.raises(ExportError, match=r"JinaBERT.*--trust-remote-code"):
        export(ExportOptions(source=str(model_dir), name="jina", repository=repo))
    for name, engine in ENGINES.items():
        report = export(ExportOptions(source=str(model_dir), name=name, repository=repo, engine=engine,
                                      trust_remote_code=True))
        assert report.info.max_length == MAX_LENGTH and report.max_abs_diff <= 1e-4

    query = "alpha river city search"
    documents = _documents()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    lengths = [len(tokenizer(query, d)["input_ids"]) for d in documents]
    assert sum(512 < n <= MAX_LENGTH for n in lengths) == 2 and max(lengths) > MAX_LENGTH
    with torch.no_grad():
        expected = np.array([float(model(**tokenizer(query, d, truncation=True, max_length=MAX_LENGTH,
                                                     return_tensors="pt")).logits[0, 0]) for d in documents])
    assert np.ptp(expected) > 0.05  # scores that differ, so that parity means something

    server = ServerProcess(["--repository", str(repo)], log=tmp_path / "serve.log")
    try:
        server.wait_serving()
        with CrossEncoderClient(server.target) as client:
            listed = {m.name: m for m in client.list_models()}
            for name in ENGINES:
                assert listed[name].max_length == MAX_LENGTH
                response = client.rerank(query, documents, model=name, raw_scores=True)
                served = np.empty(len(documents))
                for result in response.results:
                    served[result.index] = result.score
                diff = float(np.max(np.abs(served - expected)))
                print(f"{name}: served vs remote code, max abs diff {diff:.2e}")
                assert diff <= 1e-4, name
    finally:
        assert server.terminate() == 0
