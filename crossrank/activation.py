"""Activations from logits to scores, with sentence-transformers' numerics (float32 throughout).

Beside `model_info` (which names each model's activation) because both sides apply it: the gateway to what it
serves, export to the reference scores it checks them against."""

from __future__ import annotations

import numpy as np

from crossrank.model_info import Activation


def apply(activation: Activation, logits: np.ndarray) -> np.ndarray:
    """Applies `activation` row-wise to logits [n, labels]; returns float32 [n, labels]."""
    x = np.asarray(logits, dtype=np.float32)
    if activation is Activation.SIGMOID:
        # Split by sign so that exp never overflows.
        out = np.empty_like(x)
        pos = x >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
        e = np.exp(x[~pos])
        out[~pos] = e / (1.0 + e)
        return out
    if activation is Activation.SOFTMAX:
        shifted = np.exp(x - x.max(axis=-1, keepdims=True))
        return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
    if activation is Activation.TANH:
        return np.tanh(x).astype(np.float32)
    return x
