"""Splits a document that is longer than the model's window into overlapping chunks, for rerank's
LONG_DOCUMENTS_CHUNK mode (score every chunk, keep the best, as Cohere's rerank does).

The gateway never tokenizes, so chunk sizes come from the token count Triton reported for the whole pair:
tokens per word (or per character, for text without spaces) times a safety margin. A chunk that still
runs over is truncated by the tokenizer, which costs a few words at its end, never an error.
"""

from __future__ import annotations

import math

_MARGIN = 0.85  # of the window, for the uneven spread of tokens over words
_OVERLAP = 0.25  # of a chunk, shared with the next one so that no sentence is only ever cut in half


def split(query: str, document: str, pair_tokens: int, max_length: int, max_chunks: int) -> list[str]:
    """Chunks of `document` that fit `max_length` together with `query`; at most `max_chunks`, start first."""
    words = document.split()
    units, joiner = (words, " ") if len(words) > 1 else (list(document), "")
    query_units = len(query.split()) if len(words) > 1 else len(query)
    per_unit = pair_tokens / max(1, len(units) + query_units)
    per_chunk = max(1, math.floor(max_length * _MARGIN / per_unit) - query_units)
    stride = max(1, per_chunk - math.floor(per_chunk * _OVERLAP))
    chunks = []
    for start in range(0, len(units), stride):
        chunks.append(joiner.join(units[start:start + per_chunk]))
        if start + per_chunk >= len(units) or len(chunks) == max_chunks:
            break
    return chunks
