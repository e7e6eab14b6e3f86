"""Export's checks of an exported encoder against the format's reference scorer: parity (the largest logit
difference on the sample pairs, run through the very tokenizer and encoder code Triton runs) and, for reduced
precisions, ranking agreement with fp32."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from crossrank.export import agreement as agreement_module
from crossrank.export import head_rescoring
from crossrank.export.agreement import Agreement
from crossrank.export.encoder_build import BuiltEncoder
from crossrank.export.formats.base import Reference
from crossrank.export.options import ExportError
from crossrank.export.samples import sample_pairs
from crossrank.model_info import ModelInfo
from crossrank.triton_models.pair_tokenizer import PairTokenizer

logger = logging.getLogger(__name__)

# Parity scores the longest sample pair and the others shortest first while they hold at most this many
# tokens: all 64 pairs of a 512-token model (about 8,000 tokens with a real tokenizer), of an 8,192-token model
# the longest at its full window and most others (a pair that long takes minutes on two cores for a model of
# half a billion parameters).
PARITY_TOKENS = 16_384


def parity_selection(lengths: Sequence[int], budget: int = PARITY_TOKENS) -> list[int]:
    """Indices of the sample pairs parity scores: the longest always (truncation stays in the check), and the
    others shortest first while they hold at most `budget` tokens together."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    kept, spent = [order[-1]], 0
    for i in order[:-1]:
        if spent + lengths[i] > budget:
            break
        kept.append(i)
        spent += lengths[i]
    return sorted(kept)


def check_parity(reference: Reference, pair_tokenizer: PairTokenizer, built: BuiltEncoder,
                 tolerance: float) -> tuple[float, int]:
    """(largest logit difference, pairs checked); raises ExportError over `tolerance`."""
    samples = sample_pairs()
    batch = pair_tokenizer.encode([q for q, _ in samples], [d for _, d in samples])
    kept = parity_selection(batch.tensors["attention_mask"].sum(axis=1).tolist())
    pairs = [samples[i] for i in kept]
    left_out = "" if len(kept) == len(samples) else (
        f" ({len(samples) - len(kept)} long ones left out: the longest kept, the others within "
        f"{PARITY_TOKENS:,} tokens)")
    logger.info("parity: scoring %d sample pairs%s with PyTorch, then with the exported model", len(pairs), left_out)
    expected = reference(pairs)
    # the rows of the pairs kept (the longest among them: the padded width stays the same)
    exported = built.score({name: rows[kept] for name, rows in batch.tensors.items()})
    diff = float(np.max(np.abs(exported - expected)))
    if not diff <= tolerance:
        raise ExportError(f"the exported model differs from PyTorch by {diff:.2e} (limit {tolerance:.0e}); "
                          "nothing was written")
    return diff, len(pairs)


def check_agreement(reference: Reference, pair_tokenizer: PairTokenizer, built: BuiltEncoder,
                    info: ModelInfo, warn: bool = True) -> Agreement:
    """Ranking agreement of the exported encoder (a reduced precision) with the fp32 reference."""
    from crossrank.activation import apply

    def exported(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        batch = pair_tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs])
        return apply(info.activation, built.score(batch.tensors))[:, 0]

    logger.info("%s: measuring ranking agreement with fp32", info.precision)
    result = agreement_module.measure(lambda pairs: apply(info.activation, reference(pairs))[:, 0], exported)
    logger.info("%s against fp32: %s", info.precision, result.summary())
    if warn and result.spearman < agreement_module.WARN_BELOW_SPEARMAN:
        logger.warning("!!! %s export of %s ranks unlike fp32: Spearman %.4f < %.2f. Scores from this model "
                       "will reorder results; prefer fp32 for it. !!!", info.precision, info.name,
                       result.spearman, agreement_module.WARN_BELOW_SPEARMAN)
    return result


def head_bound(fast: BuiltEncoder, exact: BuiltEncoder, pair_tokenizer: PairTokenizer) -> head_rescoring.HeadBound:
    """The exact head's delta, over the ranking lists and the sample pairs parity scores."""
    samples = sample_pairs()
    lengths = pair_tokenizer.encode([q for q, _ in samples], [d for _, d in samples]).tensors["attention_mask"]
    kept = parity_selection(lengths.sum(axis=1).tolist())
    feeds = head_rescoring.bound_feeds(pair_tokenizer, [samples[i] for i in kept])
    found = head_rescoring.bound(fast.score, exact.score, feeds)
    logger.info("exact head: %s", found.summary())
    return found


def check_head_agreement(pair_tokenizer: PairTokenizer, fast: BuiltEncoder, exact: BuiltEncoder, delta: float,
                         info: ModelInfo) -> Agreement:
    """The served ranking's agreement with fp32 when the exact head re-scores the top 10 of each list. Against
    the fp32 encoder it serves beside (whole lists), which is what it promises: PyTorch's own fp32 differs
    from that by up to the parity tolerance, and would flip near-ties that no precision choice decides."""
    from crossrank.activation import apply

    def encode(pairs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        return pair_tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs]).tensors

    def served(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        logits, _ = head_rescoring.rerank(fast.score, exact.score, encode(pairs), head_rescoring.TIMING_TOP_N,
                                          delta)
        return apply(info.activation, logits.astype(np.float32)[:, None])[:, 0]

    result = agreement_module.measure(lambda pairs: apply(info.activation, exact.score(encode(pairs)))[:, 0],
                                      served)
    logger.info("%s with the exact head against fp32: %s", info.precision, result.summary())
    return result
