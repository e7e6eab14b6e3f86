"""Checks on request content that need no model: required texts, counts and size limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossrank.gateway.backend.base import TokenCut
from crossrank.gateway.core.errors import InvalidArgumentError


@dataclass(frozen=True)
class Limits:
    """Per-request limits (server_config `limits:`), documented in the README."""

    max_documents: int = 1000
    max_text_chars: int = 262_144
    default_chunks_per_document: int = 8
    max_chunks_per_document: int = 64
    max_instruction_chars: int = 4096


def require_text(value: str, field_path: str, limits: Limits, reason_empty: str = "EMPTY_TEXT") -> None:
    if not value.strip():
        raise InvalidArgumentError(f"{field_path} must not be empty", reason_empty, field_path)
    if len(value) > limits.max_text_chars:
        raise InvalidArgumentError(
            f"{field_path} has {len(value)} characters, over the limit of {limits.max_text_chars}",
            "TEXT_TOO_LONG", field_path)


def require_count(count: int, field_path: str, limits: Limits, reason_empty: str) -> None:
    if count == 0:
        raise InvalidArgumentError(f"{field_path} must not be empty", reason_empty, field_path)
    if count > limits.max_documents:
        raise InvalidArgumentError(
            f"{field_path} has {count} entries, over the limit of {limits.max_documents}",
            "TOO_MANY_INPUTS", field_path)


def chunks_per_document(requested: int, limits: Limits) -> int:
    if requested < 0 or requested > limits.max_chunks_per_document:
        raise InvalidArgumentError(
            f"max_chunks_per_document must be 0 (default {limits.default_chunks_per_document}) to "
            f"{limits.max_chunks_per_document}, got {requested}", "INVALID_CHUNK_LIMIT", "max_chunks_per_document")
    return requested or limits.default_chunks_per_document


def instruction(value: str, model_name: str, accepts_instruction: bool, limits: Limits) -> None:
    """A request's instruction: only for a model with an instruction slot, and at most the limit's length."""
    if not value:
        return
    if not accepts_instruction:
        raise InvalidArgumentError(f"model {model_name!r} has no instruction slot; leave instruction empty",
                                   "INSTRUCTION_UNSUPPORTED", "instruction")
    if len(value) > limits.max_instruction_chars:
        raise InvalidArgumentError(f"instruction has {len(value)} characters, over the limit of "
                                   f"{limits.max_instruction_chars}", "TEXT_TOO_LONG", "instruction")


def validate_rerank(query: str, documents: Sequence[str], top_n: int, limits: Limits) -> None:
    require_text(query, "query", limits, "EMPTY_QUERY")
    require_count(len(documents), "documents", limits, "EMPTY_DOCUMENTS")
    for i, document in enumerate(documents):
        require_text(document, f"documents[{i}]", limits, "EMPTY_DOCUMENT")
    if top_n < 0:
        raise InvalidArgumentError(f"top_n must be 0 (all) or positive, got {top_n}", "INVALID_TOP_N", "top_n")


def validate_classify(pairs: Sequence[tuple[str, str]], limits: Limits) -> None:
    require_count(len(pairs), "inputs", limits, "EMPTY_INPUTS")
    for i, (text, text_pair) in enumerate(pairs):
        require_text(text, f"inputs[{i}].text", limits)
        require_text(text_pair, f"inputs[{i}].text_pair", limits)


def token_cut(cut: TokenCut, chunking: bool) -> None:
    """A request's truncation side and per-document token limit (`TokenCut`)."""
    if cut.side not in ("", "left", "right"):
        raise InvalidArgumentError(f"the truncation side must be left or right, got {cut.side!r}",
                                   "INVALID_TRUNCATION", "truncation_direction")
    if cut.max_document_tokens < 0:
        raise InvalidArgumentError(f"max_tokens_per_doc must be positive, got {cut.max_document_tokens}",
                                   "INVALID_FIELD", "max_tokens_per_doc")
    if chunking and cut.side == "left":
        # Chunks follow a document from its start; keeping its end instead contradicts that.
        raise InvalidArgumentError("long_documents CHUNK reads documents from their start; it cannot be combined "
                                   "with left truncation", "INVALID_TRUNCATION", "truncation_direction")
