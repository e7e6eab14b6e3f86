"""TEI's gRPC API (`tei.v1`) against real Triton, called by grpcurl: a client that knows nothing of crossrank
and reads TEI's services from the server's reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from crossrank_client import CrossEncoderClient

from tests.e2e.server_process import ServerProcess

pytestmark = pytest.mark.e2e


def test_tei_grpc_through_reflection_with_grpcurl(server: ServerProcess) -> None:
    # grpcurl knows nothing of crossrank: it reads TEI's services from reflection and calls them as a TEI
    # gRPC user would, against real Triton; the scores are crossrank.v1's.
    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    listed = subprocess.run([grpcurl, "-plaintext", server.target, "list"], capture_output=True, text=True,
                            timeout=60, check=True).stdout.split()
    assert {"tei.v1.Rerank", "tei.v1.Predict", "tei.v1.Info"} <= set(listed)
    texts = ["alpha beta", "gamma", "alpha"]
    out = subprocess.run([grpcurl, "-plaintext", "-H", "x-crossrank-model: minilm", "-d",
                          json.dumps({"query": "alpha", "texts": texts, "return_text": True}), server.target,
                          "tei.v1.Rerank/Rerank"], capture_output=True, text=True, timeout=60, check=True).stdout
    ranks = json.loads(out)["ranks"]
    with CrossEncoderClient(server.target) as client:
        expected = client.rerank("alpha", texts, model="minilm")
    assert [r.get("index", 0) for r in ranks] == [r.index for r in expected]
    assert [r["score"] for r in ranks] == pytest.approx([r.score for r in expected], abs=1e-5)
    assert [r["text"] for r in ranks] == [texts[r.index] for r in expected]
    info = json.loads(subprocess.run([grpcurl, "-plaintext", server.target, "tei.v1.Info/Info"],
                                     capture_output=True, text=True, timeout=60, check=True).stdout)
    assert info["model_type"] == "MODEL_TYPE_RERANKER" and info["max_input_length"] > 0  # proto field names
