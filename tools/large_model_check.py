"""The large-model check: a cross-encoder of bge-reranker-v2-m3's shape (XLM-RoBERTa-large, 24 layers of width
1,024, 8,194 positions, a 250,002-token vocabulary: 568 M parameters, 2.27 GB of fp32 weights, random) goes
through `crossrank export` and `crossrank serve`, and a document of about 8,000 tokens is scored through the
gateway against PyTorch. Reports the export's time and peak memory, the served scores' difference and the
serving processes' peak memory, as JSON (stdout and --out).

Too slow for the test suite on two cores (minutes per 8,000-token forward pass); run by hand:

    .venv/bin/python tools/large_model_check.py --work /tmp/large-check --out large_check.json

The tokenizer is a small one trained here (the hub is out of reach): only the ids it makes are looked up, which
changes nothing in the cost of a forward pass of a given length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "client")]
NAME = "xlmr-large"
TARGET_TOKENS = 8_000


def build(directory: Path) -> Path:
    import torch
    import transformers as tf
    from tokenizers import processors

    from tests.model_builders import _unigram

    if (directory / "config.json").exists():
        return directory
    torch.manual_seed(0)
    tok = _unigram(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    fast = tf.XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=8192)
    config = tf.XLMRobertaConfig(vocab_size=250_002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                 intermediate_size=4096, max_position_embeddings=8194, pad_token_id=1, num_labels=1)
    tf.XLMRobertaForSequenceClassification(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def long_document(model_dir: Path) -> tuple[str, int]:
    """A document of about TARGET_TOKENS tokens (as the pair with the query), and its pair's token count."""
    import random

    from transformers import AutoTokenizer

    from crossrank.export.samples import _WORDS

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(5)
    words: list[str] = []
    while True:
        words += rng.choices(_WORDS, k=50)
        count = len(tokenizer(QUERY, " ".join(words))["input_ids"])
        if count >= TARGET_TOKENS:
            return " ".join(words), count


QUERY = "which river runs through the capital of france"
SHORT = "Paris lies on the Seine."


def reference(model_dir: Path, document: str) -> list[float]:
    """PyTorch's logits for (QUERY, document) and (QUERY, SHORT), as sentence-transformers' CrossEncoder scores
    a plain checkpoint (one pair at a time: no padding)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for text in (document, SHORT):
            features = tokenizer(QUERY, text, truncation="longest_first", max_length=8192, return_tensors="pt")
            out.append(float(model(**features).logits[0, 0]))
    return out


class PeakRss:
    """Samples the summed RSS of a process and its descendants every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mib, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from crossrank_bench.measure import rss_mib

        while not self._stop.wait(0.05):
            self.peak_mib = max(self.peak_mib, rss_mib(self.pid, with_children=True))

    def stop(self) -> float:
        """Stops sampling; the peak in GiB."""
        self._stop.set()
        self._thread.join()
        return self.peak_mib / 1024


def export(model_dir: Path, repository: Path, engine: str, log: Path) -> dict[str, Any]:
    name = f"{NAME}-{engine}"
    started = time.monotonic()
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "crossrank.cli", "export", str(model_dir), "--name", name,
                                    "--repository", str(repository), "--engine", engine, "--precision", "fp32"],
                                   stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = PeakRss(process.pid)
        code = process.wait()
    result = {"seconds": round(time.monotonic() - started, 1), "peak_rss_gib": round(peak.stop(), 2),
              "exit_code": code}
    parity = [line for line in log.read_text().splitlines() if "parity:" in line]
    result["parity_log"] = parity[-1].split("exporter: ")[-1] if parity else None
    return result


def serve_and_score(repository: Path, engine: str, document: str, log: Path) -> dict[str, Any]:
    from crossrank_bench.measure import wait_serving
    from crossrank_client import CrossEncoderClient

    from crossrank.embedded_triton.launcher import free_port

    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "crossrank.cli", "serve", "--repository", str(repository),
                                    "--host", "127.0.0.1", "--port", str(port), "--http-port", "-1",
                                    "--metrics-port", "-1"], stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    peak = PeakRss(process.pid)
    result: dict[str, Any] = {}
    try:
        result["startup_s"] = round(wait_serving(f"127.0.0.1:{port}", process, 900), 1)
        client = CrossEncoderClient(f"127.0.0.1:{port}", timeout=1800)
        started = time.monotonic()
        response = client.rerank(QUERY, [document, SHORT], model=f"{NAME}-{engine}", raw_scores=True)
        result["request_s"] = round(time.monotonic() - started, 1)
        result["scores"] = {r.index: r.score for r in response.results}
        client.close()
    finally:
        process.terminate()
        process.wait(120)
        # gateway + Triton + its python-backend stubs, summed
        result["peak_rss_gib"] = round(peak.stop(), 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--engines", default="onnx-python,torch-python")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = build(args.work / "model")
    document, tokens = long_document(model_dir)
    expected = reference(model_dir, document)
    report: dict[str, Any] = {"model": "XLM-RoBERTa-large shape, random weights (568 M parameters)",
                              "document_tokens": tokens, "reference": expected, "engines": {}}
    for engine in args.engines.split(","):
        repository = args.work / f"repository-{engine}"
        entry: dict[str, Any] = {"export": export(model_dir, repository, engine, args.work / f"export-{engine}.log")}
        report["engines"][engine] = entry
        if entry["export"]["exit_code"] == 0:
            entry["served"] = serve_and_score(repository, engine, document, args.work / f"serve-{engine}.log")
            scores = entry["served"]["scores"]
            entry["max_abs_diff"] = max(abs(scores[i] - expected[i]) for i in (0, 1))
        print(json.dumps(report, indent=2))
        if args.out:
            args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
