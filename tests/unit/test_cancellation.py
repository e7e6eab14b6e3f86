"""Cancellation reaching the work: the encoders drop a cancelled request's remaining sub-batches, a cancelled
rerank names its pieces to Triton in a notice, the register shares those names between Triton's models, and
admission holds a slot until the backend work a request left behind has ended."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest

from crossrank.gateway.backend.triton import TritonBackend
from crossrank.gateway.core.admission import Limiter, hold_slot_until
from crossrank.gateway.core.errors import OverloadedError
from crossrank.model_info import Activation, ModelInfo, Task
from crossrank.triton_contract import CANCELLED_PARAMETER
from crossrank.triton_models import cancelled
from crossrank.triton_models.cancelled import CancelledRequests
from crossrank.triton_models.ragged_batching import RaggedBatcher

NAMES = ("input_ids", "attention_mask")


def _request(rows: int, length: int, first_id: int) -> dict[str, np.ndarray]:
    ids = np.arange(first_id, first_id + rows * length, dtype=np.int64).reshape(rows, length)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def _row_sums(feed: dict[str, np.ndarray]) -> np.ndarray:
    return (feed["input_ids"] * feed["attention_mask"]).sum(axis=1, keepdims=True).astype(np.float32)


def test_a_request_cancelled_mid_batch_loses_its_remaining_sub_batches() -> None:
    requests = [_request(40, 8, 1), _request(40, 8, 10_000)]
    batcher = RaggedBatcher(NAMES, tokens_per_batch=80)  # 10 rows a sub-batch: 8 sub-batches for both
    expected = RaggedBatcher(NAMES, tokens_per_batch=80).score(requests, _row_sums)
    rows_run: list[int] = []
    asked_after_yes: list[int] = []
    said_yes: set[int] = set()

    def cancelled(i: int) -> bool:
        if i in said_yes:
            asked_after_yes.append(i)
        if i == 1 and len(rows_run) >= 2:  # the second request's client leaves after two sub-batches
            said_yes.add(i)
        return i in said_yes

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        rows_run.append(len(feed["input_ids"]))
        return _row_sums(feed)

    out = batcher.score_unless_cancelled(requests, run, cancelled)
    assert out[1] is None
    assert out[0] is not None and np.array_equal(out[0], expected[0])  # the other request is untouched
    # Two sub-batches ran before the cancellation was seen; then only the first request's 40 rows remain.
    assert sum(rows_run) < 80 and sum(rows_run) >= 40
    assert said_yes == {1} and not asked_after_yes  # once cancelled, never asked (or run) again


def test_nothing_runs_for_requests_cancelled_before_their_first_sub_batch() -> None:
    ran: list[int] = []
    out = RaggedBatcher(NAMES).score_unless_cancelled(
        [_request(5, 4, 1), _request(3, 4, 50)], lambda feed: ran.append(1) or _row_sums(feed), lambda i: True)
    assert out == [None, None] and not ran


def test_without_cancellation_every_request_gets_its_rows() -> None:
    requests = [_request(7, 3, 1), _request(0, 3, 0), _request(4, 5, 100)]
    out = RaggedBatcher(NAMES, tokens_per_batch=9).score_unless_cancelled(requests, _row_sums, lambda i: False)
    assert [None if o is None else o.shape[0] for o in out] == [7, 0, 4]
    assert np.array_equal(out[0], _row_sums(requests[0]))


async def test_the_slot_is_held_until_the_work_left_behind_ends() -> None:
    limiter = Limiter(max_in_flight=1, max_queue=0)
    work_done = asyncio.Event()
    async with limiter.admit():
        hold_slot_until(work_done.wait())  # what the backend does when it abandons Triton work
    with pytest.raises(OverloadedError):  # the request has ended, but its work still runs: no room
        async with limiter.admit():
            pass
    work_done.set()
    await asyncio.sleep(0.01)
    async with limiter.admit():  # the work ended: the slot is free again
        pass


async def test_a_request_that_leaves_nothing_behind_frees_its_slot_at_once() -> None:
    limiter = Limiter(max_in_flight=1, max_queue=0)
    async with limiter.admit():
        hold_slot_until(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    async with limiter.admit():
        pass
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    hold_slot_until(work())  # outside an admitted request: it runs, and holds nothing
    await asyncio.wait_for(ran.wait(), 1)


def _model(name: str = "m", max_batch_size: int = 8) -> ModelInfo:
    return ModelInfo(name, Task.RERANK, ("LABEL_0",), Activation.SIGMOID, 512, "onnx-python", "fp32", "tests",
                     max_batch_size)


class _SlowTriton:
    """Stands in for tritonclient's aio client: every inference waits until released."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []
        self.release = asyncio.Event()

    async def infer(self, model_name: str, inputs: list[object], **kwargs: object) -> object:
        self.calls.append(kwargs)
        await self.release.wait()
        raise asyncio.CancelledError  # never reached in these tests' pieces; the notice is answered below


async def test_a_cancelled_rerank_names_its_pieces_to_triton_and_holds_its_slot_until_answered() -> None:
    backend = TritonBackend("127.0.0.1:1")
    fake = _SlowTriton()
    backend._client = fake  # type: ignore[assignment]
    limiter = Limiter(max_in_flight=1, max_queue=0)

    async def rerank() -> None:
        async with limiter.admit():
            await backend.score(_model(max_batch_size=8), "query", [f"document {i}" for i in range(20)], None)

    call = asyncio.ensure_future(rerank())
    await asyncio.sleep(0.05)
    pieces = [c["request_id"] for c in fake.calls]
    assert len(pieces) == 3 and len(set(pieces)) == 3  # 20 documents in pieces of 8, each with its own id
    call.cancel()  # the client goes away
    await asyncio.sleep(0.05)
    [notice] = fake.calls[3:]
    assert str(notice["parameters"][CANCELLED_PARAMETER]).split() == pieces  # type: ignore[index]
    with pytest.raises(OverloadedError):  # its work may still run in Triton: the slot is still taken
        async with limiter.admit():
            pass
    fake.release.set()  # Triton answers the notice: the work queued ahead of it has ended
    await asyncio.sleep(0.05)
    async with limiter.admit():
        pass
    assert call.cancelled()


def test_the_register_is_shared_through_its_folder_and_takes_only_plain_ids(tmp_path: Path) -> None:
    tokenizer_side, encoder_side = CancelledRequests(str(tmp_path)), CancelledRequests(str(tmp_path))
    tokenizer_side.add(["0f3a9c", "../../etc/passwd", "x" * 65, "b7"])
    assert "0f3a9c" in encoder_side and "b7" in encoder_side
    assert "../../etc/passwd" not in encoder_side and "" not in encoder_side and None not in encoder_side
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0f3a9c", "b7"]  # nothing written outside, nothing odd


def test_old_entries_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register = CancelledRequests(str(tmp_path))
    register.add(["old"])
    past = time.time() - cancelled.KEEP_S - 1
    os.utime(tmp_path / "old", (past, past))
    monkeypatch.setattr(cancelled, "_PRUNE_EVERY_S", 0.0)
    register.add(["new"])
    assert "old" not in register and "new" in register


def test_the_embedded_launcher_gives_its_triton_a_register_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cancelled.REGISTER_ENV, raising=False)
    assert cancelled.folder(4242).endswith("crossrank-cancelled-4242")
    monkeypatch.setenv(cancelled.REGISTER_ENV, "/scratch/cancelled")
    assert cancelled.folder() == "/scratch/cancelled"
