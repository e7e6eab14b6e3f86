"""Fixed query/passage pairs that export scores with both PyTorch and the exported model to check parity.

They are generated from a seed, cover short and long pairs, and include passages longer than any model's
max length so that truncation is part of the check.
"""

from __future__ import annotations

import random

_WORDS = (
    "search ranking passage query retrieval neural model document relevance answer question index vector "
    "dense sparse token sentence paris france capital river city population history science physics "
    "protein cell energy climate ocean music guitar piano painting museum election policy market price "
    "growth software server latency throughput memory cache network protocol the a of in to and is for "
    "with on by was as it that from this be are which"
).split()


def sample_pairs(count: int = 64, seed: int = 1234, long_every: int = 8) -> list[tuple[str, str]]:
    """Returns `count` (query, passage) pairs; every `long_every`-th passage is ~1,500 words."""
    rng = random.Random(seed)
    pairs = []
    for i in range(count):
        query = " ".join(rng.choices(_WORDS, k=rng.randint(3, 12)))
        words = 1500 if i % long_every == long_every - 1 else rng.randint(5, 80)
        passage = " ".join(rng.choices(_WORDS, k=words)).capitalize() + "."
        pairs.append((query, passage))
    return pairs


def ranking_lists(queries: int = 8, passages: int = 50, seed: int = 4321) -> list[tuple[str, list[str]]]:
    """Fixed (query, passages) lists for checking that a reduced-precision export ranks like fp32."""
    rng = random.Random(seed)
    out = []
    for _ in range(queries):
        query = " ".join(rng.choices(_WORDS, k=rng.randint(4, 10)))
        docs = [" ".join(rng.choices(_WORDS, k=rng.randint(20, 70))).capitalize() + "." for _ in range(passages)]
        out.append((query, docs))
    return out
