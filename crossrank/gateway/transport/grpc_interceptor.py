"""The gRPC door: runs each call through the shared request pipeline (API key, admission, metrics, access
log) and is the one place where exceptions become gRPC statuses.

Each call's request message is read under a deadline, before the call is admitted (`grpc_receive`): a call
whose message is late holds no slot. A `CrossrankError` becomes its code with a `google.rpc.Status`
carrying `ErrorInfo` (reason, domain, request id) and, for bad input, `BadRequest` field violations.
Anything else is our bug: the client gets a generic INTERNAL with the request id, the log gets the
traceback. Every response carries `x-request-id`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from crossrank.gateway.core.admission import Reservation
from crossrank.gateway.core.errors import CrossrankError, ErrorCode, MalformedRequestError
from crossrank.gateway.core.pipeline import RequestPipeline, request_id
from crossrank.gateway.transport import tei
from crossrank.gateway.transport.grpc_receive import WaitingCalls, receive_message

logger = logging.getLogger(__name__)
access_log = logging.getLogger("crossrank.access")

ERROR_DOMAIN = "crossrank.dev"
REQUEST_ID_KEY = "x-request-id"
SERVICE_PREFIX = "/crossrank.v1."
TEI_PREFIX = "/tei.v1."  # TEI's API (tei_grpc.py): the same pipeline, TEI's status codes
MAX_MESSAGE_CHARS = 2048
# The one place where the core's error codes become gRPC status codes (TEI's services: tei.TEI_GRPC_STATUS).
GRPC_STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.MESSAGE_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorCode.READ_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,  # the server's read deadline, not the client's
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,  # HTTP only: gRPC frames its own bytes
}


def to_status(error: CrossrankError, request_id: str, code: grpc.StatusCode | None = None) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN,
                                       metadata={"request_id": request_id})
    details = [info]
    if error.violations:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations]))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    # Status and message travel in trailing metadata, whose size gRPC limits (16 KiB): a message that could
    # overflow it would turn the answer into RESOURCE_EXHAUSTED; errors echo client strings only shortened.
    message = error.message if len(error.message) <= MAX_MESSAGE_CHARS else error.message[:MAX_MESSAGE_CHARS] + "..."
    return status_pb2.Status(code=(code or GRPC_STATUS[error.code]).value[0], message=message, details=packed)


def _pairs(request: Any) -> int:
    for name in ("documents", "texts", "inputs"):
        if hasattr(request, name):
            value = getattr(request, name)
            return 1 if isinstance(value, str) else len(value)
    return 0


def _usage(response: Any) -> tuple[int, int]:
    """(pairs scored, tokens) of a response: crossrank's `usage`, or TEI's `metadata`."""
    usage = getattr(response, "usage", None)
    if usage is not None:
        return usage.pairs, usage.tokens
    metadata = getattr(response, "metadata", None)
    if metadata is not None:
        return len(getattr(response, "ranks", None) or [None]), metadata.compute_tokens
    return 0, 0


class _Undecodable:
    """Stands in for a request whose bytes did not parse, so the client gets INVALID_ARGUMENT, not INTERNAL."""


class _Unparsed:
    """A request's bytes, parsed only once admission let it in: a refused request never costs its parsed copy
    (as large as the message again), and admission weighs it by its size on the wire."""

    def __init__(self, data: bytes, deserializer: Callable[[bytes], Any]) -> None:
        self.data = data
        self._deserializer = deserializer

    def parse(self) -> Any:
        try:
            return self._deserializer(self.data)
        except DecodeError:
            return _Undecodable()
        finally:
            self.data = b""  # the parsed message holds all the request needs


def _deferred(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    return lambda data: _Unparsed(data, deserializer)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """`message_timeout_s`: how long a call may take to deliver its request message; `max_waiting`: how many
    calls may wait for theirs at once (see grpc_receive)."""

    def __init__(self, pipeline: RequestPipeline, message_timeout_s: float = 60.0, max_waiting: int = 1024) -> None:
        self._pipeline = pipeline
        self._message_timeout_s = message_timeout_s
        self._waiting = WaitingCalls(max_waiting)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or not method.startswith((SERVICE_PREFIX, TEI_PREFIX)):
            return handler
        inner = handler.unary_unary
        short = method.rsplit("/", 1)[-1]
        if method.startswith(TEI_PREFIX):
            short = "Tei" + short  # its own metrics label: tei.v1's Rerank is not crossrank.v1's
        code_for = tei.tei_grpc_code if method.startswith(TEI_PREFIX) else None

        async def guarded(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = context.invocation_metadata() or ()
            rid = request_id(next((v for k, v in metadata if k == REQUEST_ID_KEY and isinstance(v, str)), None))
            await context.send_initial_metadata(((REQUEST_ID_KEY, rid),))

            def code_of(exc: BaseException) -> str | None:  # an abort raised by grpc itself keeps its code
                code = context.code()
                return code.name if code not in (None, grpc.StatusCode.OK) else None

            received: list[_Unparsed] = []

            async def receive(reservation: Reservation) -> None:
                unparsed = await receive_message(context, self._waiting, self._message_timeout_s)
                reservation.take(len(unparsed.data))
                received.append(unparsed)

            try:
                async with self._pipeline.call(short, rid, metadata, code_of, receive=receive) as call:
                    request = received.pop().parse()
                    call.model, call.pairs = getattr(request, "model", ""), _pairs(request)
                    if isinstance(request, _Undecodable):
                        raise MalformedRequestError()
                    response = await inner(request, context)
                    call.model = getattr(response, "model", "") or call.model
                    call.scored_pairs, call.tokens = _usage(response)
                    return response
            except CrossrankError as exc:
                code = code_for(exc) if code_for else None
                await context.abort_with_status(rpc_status.to_status(to_status(exc, rid, code)))
            except Exception as exc:
                if code_of(exc):  # grpc's own abort: it stands
                    raise
                internal = CrossrankError(f"internal error (request id {rid})")
                await context.abort_with_status(rpc_status.to_status(to_status(internal, rid)))
            raise AssertionError("unreachable")  # abort_with_status always raises

        # Stream-unary on the server side (unary on the wire, so every client is served): the handler reads the
        # message itself, under its deadline, instead of gRPC waiting for it without one.
        return grpc.stream_unary_rpc_method_handler(
            guarded, request_deserializer=_deferred(handler.request_deserializer),
            response_serializer=handler.response_serializer)
