"""A seeded MS MARCO-like workload: 8-12 word queries, 40-70 word passages (about 80 tokens a pair)."""

from __future__ import annotations

import random
from dataclasses import dataclass

_VOCAB = (
    "what how why when where which who is are the a of in to and for with on by from at as that this it be "
    "was were has have had can will would should may might capital city country river mountain ocean "
    "population history war king queen president election government law court policy economy market "
    "price inflation bank money tax trade company product software computer network internet data model "
    "learning neural search engine ranking query document passage answer question science physics "
    "chemistry biology cell protein gene disease treatment doctor hospital medicine health food diet "
    "water energy climate weather temperature rain snow summer winter music song album film movie actor "
    "book author novel poem language word sentence grammar school university student teacher research "
    "study result method experiment theory number average percent year month day time hour minute"
).split()


@dataclass(frozen=True)
class RerankRequestSpec:
    query: str
    documents: tuple[str, ...]


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(_VOCAB, k=rng.randint(low, high)))


def requests(count: int, documents: int, seed: int) -> list[RerankRequestSpec]:
    rng = random.Random(seed)
    return [RerankRequestSpec(_sentence(rng, 8, 12) + "?",
                              tuple(_sentence(rng, 40, 70).capitalize() + "." for _ in range(documents)))
            for _ in range(count)]
