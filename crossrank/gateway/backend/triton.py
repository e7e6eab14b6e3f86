"""`ScoringBackend` over Triton's KServe v2 gRPC API: calls only the ensembles, never tokenizer or encoder.

Model metadata comes from the ensembles' config parameters that export wrote (see model_info.py). Triton's
error text, tensor names and paths stay in the log: callers get the gateway's own errors.

A request that ends before Triton answers it (its client cancelled, its deadline passed, one of its pieces
failed) cancels its pieces still in Triton. Triton itself cancels an ensemble request only between steps, so
the gateway also sends the model a small notice naming the abandoned pieces' request ids: the tokenizer
records them and the encoder drops them before its next sub-batch (triton_models/cancelled.py). The notice
travels behind the abandoned work, so when it is answered that work has ended; the request's admission slot is
held until then (with one encoder instance, as export configures on CPU; with several, at most the sub-batch
another instance is running may remain).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import tritonclient.grpc.aio as triton
from tritonclient.utils import InferenceServerException

from crossrank.gateway.backend.base import DEFAULT_CUT, PairTooLongError, ScoredPairs, TokenCut
from crossrank.gateway.core.admission import hold_slot_until
from crossrank.gateway.core.errors import BackendError, BackendUnavailableError, DeadlineError, ModelGoneError
from crossrank.model_info import ModelInfo
from crossrank.triton_contract import (
    CANCELLED_PARAMETER,
    ENSEMBLE_OUTPUTS,
    INSTRUCTION_PARAMETER,
    MAX_DOCUMENT_TOKENS_PARAMETER,
    QUERY_PARAMETER,
    TRUNCATE_PARAMETER,
    TRUNCATION_SIDE_PARAMETER,
    parse_too_long,
)

logger = logging.getLogger(__name__)

_UNAVAILABLE = ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED")
# Triton's answer while a python-backend stub of a model is dead ("Stub process 'minilm_encoder_0_0' is not
# healthy."): it names the instance, `<model>_<instance>_<device>`.
_STUB_DEAD = re.compile(r"Stub process '([^']+)' is not healthy", re.IGNORECASE)
STUB_DEAD_MESSAGE = "a model process of the inference server died and is being restarted; retry shortly"

# The one code the tokenizer refuses a request with (an over-long pair; see triton_contract.py).
_REFUSED = "StatusCode.INVALID_ARGUMENT"

# At most this long a request's slot waits for Triton to finish the work it abandoned (a paused or wedged
# Triton must not hold slots forever; its own fault handling takes over).
DRAIN_WAIT_S = 30.0


def _translate(exc: InferenceServerException, what: str, model: str = "") -> Exception:
    status = str(exc.status() or "")
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return DeadlineError()
    message = str(exc.message() or "").lower()
    if model and (status == "StatusCode.NOT_FOUND" or "unknown model" in message
                  or "no available versions" in message):
        logger.warning("Triton no longer serves %s (%s): %s", model, what, exc)
        return ModelGoneError(model)
    if status in _UNAVAILABLE or "not ready" in message:
        logger.warning("Triton unavailable during %s: %s", what, exc)
        return BackendUnavailableError()
    logger.error("Triton failed during %s: %s %s", what, status, exc)
    return BackendError()


def _bytes_input(name: str, values: Sequence[str]) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(values), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[v.encode("utf-8")] for v in values], dtype=np.object_))
    return tensor


class TritonBackend:
    """Scores pairs through the ensembles of one Triton server."""

    def __init__(self, url: str) -> None:
        self._client = triton.InferenceServerClient(url)
        self._stale: set[str] = set()  # models left out as exported by an older crossrank (logged once)
        # The model (ensemble) a request found with a dead python-backend stub, until the monitor takes it.
        self.stub_fault: ModelInfo | None = None

    def take_stub_fault(self) -> ModelInfo | None:
        """The model a request found with a dead stub since the last call, if any (then forgotten)."""
        fault, self.stub_fault = self.stub_fault, None
        return fault

    async def probe(self, model: ModelInfo) -> bool:
        """Whether `model` answers one small request (False while a stub of it is dead)."""
        try:
            await self._infer(model, "a", ["b"], 5.0, True, "", DEFAULT_CUT, first=0)
        except BackendUnavailableError:
            return False
        except Exception:  # any other outcome says the model's processes answer
            return True
        return True

    async def ready(self) -> bool:
        try:
            return bool(await self._client.is_server_ready(client_timeout=2.0))
        except Exception:  # connection refused, timeouts: all mean "not ready"
            return False

    async def models(self) -> list[ModelInfo]:
        try:
            index = await self._client.get_model_repository_index(as_json=True, client_timeout=10.0)
            found = []
            for entry in index.get("models", []):
                if entry.get("state") != "READY":
                    continue
                config = (await self._client.get_model_config(entry["name"], as_json=True,
                                                              client_timeout=10.0))["config"]
                if config.get("platform") != "ensemble":
                    continue
                params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
                info = ModelInfo.from_parameters(entry["name"], int(config.get("max_batch_size", 0)), params)
                if info is not None and self._current(info.name, config):
                    found.append(info)
            return sorted(found, key=lambda m: m.name)
        except InferenceServerException as exc:
            raise _translate(exc, "model discovery") from exc

    def _current(self, name: str, config: dict[str, Any]) -> bool:
        """Whether an ensemble answers what this gateway reads; an export by an older crossrank (no
        `document_end` output) would fail every request, so it is left out, said once in the log."""
        missing = set(ENSEMBLE_OUTPUTS) - {str(o.get("name")) for o in config.get("output", [])}
        if missing and name not in self._stale:
            self._stale.add(name)
            logger.error("model %s is left out: it was exported by an older crossrank (its ensemble has no %s "
                         "output); export it again with `crossrank export`", name, ", ".join(sorted(missing)))
        return not missing

    async def score(self, model: ModelInfo, texts: str | Sequence[str], text_pairs: Sequence[str],
                    timeout: float | None, truncate: bool = True, instruction: str = "",
                    cut: TokenCut = DEFAULT_CUT) -> ScoredPairs:
        step = max(1, model.max_batch_size)
        ids = [uuid.uuid4().hex for _ in range(0, len(text_pairs), step)]  # Triton's request id of each piece
        pieces = [asyncio.ensure_future(self._infer(
            model, texts if isinstance(texts, str) else texts[i:i + step], text_pairs[i:i + step], timeout,
            truncate, instruction, cut, first=i, request_id=piece_id))
            for i, piece_id in zip(range(0, len(text_pairs), step), ids)]
        try:
            results = await asyncio.gather(*pieces)
        except BaseException:
            # Cancelled, past its deadline, or one piece failed: the other pieces are not wanted any more.
            for piece in pieces:
                piece.cancel()
            abandoned = [piece_id for piece, piece_id in zip(pieces, ids)
                         if piece.cancelled() or not piece.done() or isinstance(piece.exception(), DeadlineError)]
            if abandoned:
                hold_slot_until(self._abandon(model, abandoned))
            raise
        return ScoredPairs.concatenate(results)

    async def _abandon(self, model: ModelInfo, request_ids: list[str]) -> None:
        """Tells Triton to drop the pieces `request_ids`; returns when the notice is answered (the work queued
        ahead of it has ended) or after DRAIN_WAIT_S."""
        try:
            await self._infer(model, "a", ["b"], DRAIN_WAIT_S, True, "", DEFAULT_CUT, first=0,
                              extra={CANCELLED_PARAMETER: " ".join(request_ids)})
        except Exception as exc:  # Triton down or wedged: its own fault handling takes over
            logger.info("notice of %d abandoned pieces to %s not answered: %s", len(request_ids), model.name,
                        type(exc).__name__)

    async def _infer(self, model: ModelInfo, texts: str | Sequence[str], text_pairs: Sequence[str],
                     timeout: float | None, truncate: bool, instruction: str, cut: TokenCut,
                     first: int, request_id: str = "", extra: dict[str, str] | None = None) -> ScoredPairs:
        """One piece of a request, whose pairs begin at the request's pair `first`."""
        parameters: dict[str, str | bool | int] = dict(extra or {})
        if cut.side:
            parameters[TRUNCATION_SIDE_PARAMETER] = cut.side
        if cut.max_document_tokens:
            parameters[MAX_DOCUMENT_TOKENS_PARAMETER] = cut.max_document_tokens
        if isinstance(texts, str):
            # The query travels once, as a request parameter the ensemble forwards to its tokenizer; the
            # `text` rows stay empty (4 bytes each instead of a copy of the query per document).
            parameters[QUERY_PARAMETER] = texts
            texts = [""] * len(text_pairs)
        if not truncate:
            parameters[TRUNCATE_PARAMETER] = False
        if instruction:
            parameters[INSTRUCTION_PARAMETER] = instruction
        inputs = [_bytes_input("text", texts), _bytes_input("text_pair", text_pairs)]
        outputs = [triton.InferRequestedOutput(n) for n in ENSEMBLE_OUTPUTS]
        try:
            result = await self._client.infer(model.name, inputs, outputs=outputs, client_timeout=timeout,
                                              parameters=parameters or None, request_id=request_id)
        except InferenceServerException as exc:
            stub = _STUB_DEAD.search(str(exc.message() or ""))
            if stub:
                # A python-backend stub died (killed, OOM): Triton keeps the model READY and fails each request
                # until the model is loaded again. Retryable for the client; the monitor heals it.
                if self.stub_fault is None:
                    logger.error("Triton's process for %s died (%s): requests for it get UNAVAILABLE until it is "
                                 "restarted", stub.group(1), model.name)
                self.stub_fault = model
                raise BackendUnavailableError(STUB_DEAD_MESSAGE) from None
            too_long = parse_too_long(str(exc.message() or "")) if str(exc.status()) == _REFUSED else None
            if too_long is not None:
                raise PairTooLongError(first + too_long[0], too_long[1]) from None
            raise _translate(exc, f"inference on {model.name}", model.name) from exc
        logits, num_tokens, document_end = (result.as_numpy(n) for n in ENSEMBLE_OUTPUTS)
        if logits is None or num_tokens is None or document_end is None or logits.shape[0] != len(text_pairs):
            logger.error("Triton returned malformed outputs for %s", model.name)
            raise BackendError()
        return ScoredPairs(logits.astype(np.float32), num_tokens.reshape(-1).astype(np.int64),
                           document_end.reshape(-1).astype(np.int64))

    async def close(self) -> None:
        await self._client.close()
