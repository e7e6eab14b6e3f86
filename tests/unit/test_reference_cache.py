"""Export's reference scorer asks PyTorch once per distinct list of pairs, however many candidates ask."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossrank.export.reference import remembered


def test_each_distinct_list_is_scored_once_and_callers_get_their_own_copy() -> None:
    calls: list[list[tuple[str, str]]] = []

    def reference(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        calls.append(list(pairs))
        return np.array([[len(a) + len(b)] for a, b in pairs], dtype=np.float32)

    score = remembered(reference)
    first = score([("q", "dd"), ("q", "d")])
    first[0, 0] = -1.0  # a caller writing into its result changes nothing for the next
    again = score([("q", "dd"), ("q", "d")])
    other = score([("q", "d")])
    assert again.tolist() == [[3.0], [2.0]] and other.tolist() == [[2.0]]
    assert calls == [[("q", "dd"), ("q", "d")], [("q", "d")]]
