"""Reduced precisions on the MiniLM-L-6 stand-in: export prints the largest score difference to fp32, the
Spearman correlation and the top-10 overlap over fixed query/passage lists, those figures are what the
exported model really does (recomputed here from the files written), and export warns loudly exactly when
Spearman falls below 0.99."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sentence_transformers import CrossEncoder

from crossrank.cli import main
from crossrank.export.agreement import WARN_BELOW_SPEARMAN as MIN_SPEARMAN
from crossrank.export.samples import ranking_lists
from crossrank.triton_models.pair_tokenizer import PairTokenizer

SUMMARY = re.compile(r"(\w+) against fp32: largest score difference ([\d.]+), Spearman ([\d.]+), "
                     r"top-10 overlap ([\d.]+) over (\d+) query/passage lists")


def _served_scores(repo: Path, name: str, engine: str, pairs: list[tuple[str, str]]) -> np.ndarray:
    """Scores from the files export wrote, through the encoder code Triton runs."""
    tokenizer = PairTokenizer.from_directory(repo / f"{name}_tokenizer" / "1")
    batch = tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs]).tensors
    version = repo / f"{name}_encoder" / "1"
    if engine == "onnx-python":
        from crossrank.triton_models.onnx_encoder import OnnxEncoder

        logits = OnnxEncoder(str(version / "model.onnx")).score([batch])[0]
    else:
        from crossrank.triton_models.torch_encoder import TorchEncoder

        logits = TorchEncoder(str(version / "hf"), list(batch), precision="bf16", device="cpu").score([batch])[0]
    return 1 / (1 + np.exp(-logits[:, 0].astype(np.float64)))


@pytest.mark.parametrize(("engine", "precision"), [("onnx-python", "int8"), ("torch-python", "bf16")])
def test_export_reports_true_agreement_and_warns_below_099(minilm_dir: Path, tmp_path: Path, engine: str,
                                                           precision: str, capsys: pytest.CaptureFixture[str],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    repo = tmp_path / "repo"
    with caplog.at_level(logging.WARNING):
        code = main(["export", str(minilm_dir), "--name", "m", "--repository", str(repo), "--engine", engine,
                     "--precision", precision])
    assert code == 0
    captured = capsys.readouterr()
    match = SUMMARY.search(captured.out)
    assert match, "export prints the agreement line"
    assert match.group(1) == precision
    max_diff, rho, top10, lists = float(match[2]), float(match[3]), float(match[4]), int(match[5])
    assert lists == len(ranking_lists())
    warned = f"!!! {precision} export of m ranks unlike fp32" in captured.err + caplog.text
    assert warned == (rho < MIN_SPEARMAN)

    # The printed figures are the exported model's: recomputed from the repository against
    # sentence-transformers fp32.
    reference = CrossEncoder(str(minilm_dir), device="cpu")
    rhos, overlaps, diffs = [], [], []
    for query, passages in ranking_lists():
        pairs = [(query, p) for p in passages]
        expected = np.asarray(reference.predict(pairs, activation_fn=torch.nn.Sigmoid()), dtype=np.float64)
        got = _served_scores(repo, "m", engine, pairs)
        diffs.append(np.max(np.abs(expected - got)))
        rhos.append(spearmanr(expected, got).statistic)
        overlaps.append(len(set(np.argsort(-expected)[:10]) & set(np.argsort(-got)[:10])) / 10)
    assert np.mean(rhos) == pytest.approx(rho, abs=2e-4)
    assert np.mean(overlaps) == pytest.approx(top10, abs=2e-3)
    assert max(diffs) == pytest.approx(max_diff, abs=2e-4)
    assert rho > 0.9 and top10 >= 0.7  # reduced, not broken: it still ranks like fp32


AUTO_LINE = re.compile(r"auto: (\S+) (\w+)( \+ exact head)? measured (\d+) pairs/s.*?, "
                       r"(the reference|agrees|below the bar)")


def test_auto_measures_what_the_machine_offers_and_serves_an_agreeing_candidate(
        minilm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    from crossrank.embedded_triton.model_setup import exported_models
    from crossrank.export.precision import CHOOSE_MIN_SPEARMAN as BAR
    from crossrank.export.precision import candidates
    from crossrank.triton_models.host_cpu import cpu_flags

    repo = tmp_path / "repo"
    with caplog.at_level(logging.INFO):
        assert main(["export", str(minilm_dir), "--name", "m", "--repository", str(repo)]) == 0
    log = capsys.readouterr().err + caplog.text  # the CLI logs to stderr
    measured = {(m[1], m[2], bool(m[3])): m[5] for m in AUTO_LINE.finditer(log)}
    offered = candidates("auto", cpu_flags(), torch.cuda.is_available())
    assert set(measured) == {(c.engine, c.precision, c.exact_head) for c in offered}
    chosen = re.search(r"auto: chose (\S+) (\w+)( \+ exact head)?", log)
    assert chosen, log
    assert measured[(chosen[1], chosen[2], bool(chosen[3]))] in ("the reference", "agrees")
    [info] = exported_models(repo)
    assert (info.engine, info.precision, info.exact_head) == (chosen[1], chosen[2], bool(chosen[3]))
    # The recorded sub-batch width is one export measured; threads are left to the serving machine.
    config = (repo / "m_encoder" / "config.pbtxt").read_text()
    width = re.search(r'key: "tokens_per_batch"\s+value \{\s+string_value: "(\d+)"', config)
    assert width and f"{width[1]}: " in log
    assert re.search(r'string_value: "auto"', config)
    if chosen[2] != "fp32" and not chosen[3]:
        rho = re.search(rf"{chosen[2]} against fp32: .*Spearman ([\d.]+)", log)
        assert rho and float(rho[1]) >= BAR
    # whatever was chosen ranks the top 10 of every one of export's lists as fp32 does
    if chosen[2] != "fp32":
        exact = re.search(rf"{chosen[2]}{' with the exact head' if chosen[3] else ''} against fp32: .*"
                          r"top 10 the same, in order, on (\d+)%", log)
        assert exact and exact[1] == "100", log


def test_a_bf16_export_loaded_without_bf16_hardware_says_so_once(tiny_bert_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from crossrank.triton_models import torch_encoder

    names = ["input_ids", "attention_mask", "token_type_ids"]
    monkeypatch.setattr(torch_encoder, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    with caplog.at_level(logging.WARNING, logger="crossrank.encoder"):
        torch_encoder.TorchEncoder(str(tiny_bert_dir), names, precision="bf16", device="cpu")
    assert caplog.text.count("no bf16 hardware") == 1 and "3x slower" in caplog.text
    caplog.clear()
    monkeypatch.setattr(torch_encoder, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    with caplog.at_level(logging.WARNING, logger="crossrank.encoder"):
        torch_encoder.TorchEncoder(str(tiny_bert_dir), names, precision="bf16", device="cpu")
        torch_encoder.TorchEncoder(str(tiny_bert_dir), names, precision="fp32", device="cpu")
    assert "no bf16 hardware" not in caplog.text
