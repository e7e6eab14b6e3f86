"""Where the next chunk of a long document begins, for rerank's LONG_DOCUMENTS_CHUNK mode (score every chunk,
keep the best, as Cohere's rerank does).

The gateway never tokenizes; the tokenizer reports, for every pair it truncated, the character where the kept
tokens of the document end (`ScoredPairs.document_end`). So chunk boundaries are token boundaries of the
model's own tokenizer: the first chunk is the document's start as the first pass scored it, and each next
chunk begins a quarter of the previous one before that one's end (at a space where there is one), so that no
sentence is only ever seen cut in half, and runs as far as the tokenizer keeps it. Chunks are scored in
rounds (scoring.py), until a chunk reaches the document's end or the chunk limit is reached; a document cut
before its end is reported with the characters its score saw.
"""

from __future__ import annotations

OVERLAP = 0.25  # of a chunk, shared with the next one
MIN_PIECE_CHARS = 256  # the least sent for a chunk, whatever the last chunk's length


def next_start(document: str, start: int, end: int) -> int | None:
    """Where the chunk after `document[start:end]` begins; None when that chunk reached the document's end or
    held nothing of it (a query that fills the model's window leaves no room to move on)."""
    if end >= len(document) or end <= start:
        return None
    target = end - int((end - start) * OVERLAP)
    # Begin at a word (after the last whitespace between the previous chunk's start and the target).
    space = max(document.rfind(" ", start + 1, target + 1), document.rfind("\n", start + 1, target + 1))
    begin = space + 1 if space > start else target
    return begin if begin > start else start + 1


def piece(document: str, start: int, previous_chars: int) -> str:
    """The text sent for the chunk that begins at `start`: twice the previous chunk's characters (the tokenizer
    then cuts it at the window's end), so a long document is never sent whole for every chunk."""
    return document[start:start + max(MIN_PIECE_CHARS, 2 * previous_chars)]
