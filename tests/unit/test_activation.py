from __future__ import annotations

import numpy as np
import torch

from crossrank.activation import apply
from crossrank.model_info import Activation


def test_sigmoid_matches_torch_and_never_overflows() -> None:
    logits = np.array([[-1000.0], [-3.5], [0.0], [2.25], [1000.0]], dtype=np.float32)
    out = apply(Activation.SIGMOID, logits)
    np.testing.assert_allclose(out, torch.sigmoid(torch.from_numpy(logits)).numpy(), atol=1e-7)
    assert np.isfinite(out).all()


def test_softmax_rows_sum_to_one_and_match_torch() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [500.0, -500.0, 0.0]], dtype=np.float32)
    out = apply(Activation.SOFTMAX, logits)
    np.testing.assert_allclose(out, torch.softmax(torch.from_numpy(logits), dim=-1).numpy(), atol=1e-7)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)


def test_identity_returns_logits() -> None:
    logits = np.array([[0.5, -2.0]], dtype=np.float32)
    np.testing.assert_array_equal(apply(Activation.IDENTITY, logits), logits)
