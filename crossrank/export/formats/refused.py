"""Checkpoints crossrank recognises and refuses by name, each with the reason and what to do instead: models
whose published code could not be read or run here to check parity against, or whose scoring changes the
sequence inside the model in a way no format reproduces yet. A refusal is a format that recognises its
checkpoints and says why in `prepare`; making one of them served is a format module of its own, tested against
the published code, that takes its place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crossrank.export.formats.base import Checkpoint, Format, Prepared
from crossrank.export.options import ExportError


def _auto_map(checkpoint: Checkpoint) -> str:
    return " ".join(str(v) for v in (getattr(checkpoint.config, "auto_map", None) or {}).values())


@dataclass(frozen=True)
class _Refusal:
    model: str
    matches: Callable[[Checkpoint], bool]
    reason: str


REFUSALS = (
    _Refusal("BAAI/bge-reranker-v2.5-gemma2-lightweight",
             lambda c: c.model_type == "cost_wise_gemma" or "CostWiseGemmaForCausalLM" in c.architectures,
             "FlagEmbedding's lightweight reranker compresses the passage's tokens inside the model at chosen layers "
             "(compress_layers, compress_ratio) before a cutoff layer's head, which no crossrank format reproduces "
             "yet; serve BAAI/bge-reranker-v2-gemma (--layout bge-gemma) or bge-reranker-v2-minicpm-layerwise "
             "(--layout minicpm-layerwise) instead"),
    _Refusal("Alibaba-NLP/gte-multilingual-reranker-base",
             lambda c: c.model_type == "new" or "NewForSequenceClassification" in c.architectures,
             "its architecture (\"NewModel\": a BERT with rotary positions and unpadded attention) is custom code "
             "fetched from another repository (Alibaba-NLP/new-impl), which export has not been checked against; "
             "serve a multilingual cross-encoder crossrank tests instead, e.g. BAAI/bge-reranker-v2-m3 (XLM-RoBERTa)"),
    _Refusal("jinaai/jina-reranker-v2-base-multilingual",
             lambda c: "XLMRobertaFlash" in type(c.config).__name__ or "XLMRobertaFlashConfig" in _auto_map(c),
             "its architecture (an XLM-RoBERTa variant with rotary positions and flash attention, "
             "jinaai/xlm-roberta-flash-implementation) is custom code export has not been checked against; serve "
             "BAAI/bge-reranker-v2-m3 or jina-reranker-v1-turbo-en (--layout jina-bert) instead"),
)


class Refused(Format):
    name = "refused"
    told = True
    summary = "checkpoints recognised and refused by name (see docs/models.md)"

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return any(r.matches(checkpoint) for r in REFUSALS)

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        refusal = next(r for r in REFUSALS if r.matches(checkpoint))
        raise ExportError(f"{checkpoint.source}: looks like a {refusal.model} checkpoint, which crossrank does not "
                          f"serve: {refusal.reason}")


FORMAT = Refused()
