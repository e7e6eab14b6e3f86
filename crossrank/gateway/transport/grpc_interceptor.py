"""The one place where exceptions become gRPC statuses, and where every request is logged.

A `CrossrankError` becomes its code with a `google.rpc.Status` carrying `ErrorInfo` (reason, domain, request
id) and, for bad input, `BadRequest` field violations. Anything else is our bug: the client gets a generic
INTERNAL with the request id, the log gets the traceback. Every response carries `x-request-id`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from crossrank.gateway.core.admission import ApiKeys, Limiter, arrived_at, queued_ms
from crossrank.gateway.core.errors import CrossrankError, MalformedRequestError
from crossrank.gateway.core.metrics import GatewayMetrics

logger = logging.getLogger(__name__)
access_log = logging.getLogger("crossrank.access")

ERROR_DOMAIN = "crossrank.dev"
REQUEST_ID_KEY = "x-request-id"
SERVICE_PREFIX = "/crossrank.v1."


def to_status(error: CrossrankError, request_id: str) -> status_pb2.Status:
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
    return status_pb2.Status(code=error.code.value[0], message=error.message, details=packed)


def _request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable():
            return value
    return uuid.uuid4().hex


def _pairs(request: Any) -> int:
    for name in ("documents", "inputs"):
        if hasattr(request, name):
            return len(getattr(request, name))
    return 0


class _Undecodable:
    """Stands in for a request whose bytes did not parse, so the client gets INVALID_ARGUMENT, not INTERNAL."""


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return _Undecodable()

    return deserialize


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: GatewayMetrics | None = None, api_keys: ApiKeys | None = None,
                 limiter: Limiter | None = None) -> None:
        self._metrics = metrics
        self._api_keys = api_keys or ApiKeys(())
        self._limiter = limiter

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or not method.startswith(SERVICE_PREFIX):
            return handler
        inner = handler.unary_unary
        short = method.rsplit("/", 1)[-1]

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request_id = _request_id(context)
            await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
            started = time.perf_counter()
            arrived_at.set(started)
            queued_ms.set(0.0)
            code = grpc.StatusCode.OK
            response: Any = None
            if self._metrics:
                self._metrics.in_flight.inc()
            try:
                self._api_keys.check(context.invocation_metadata())
                if isinstance(request, _Undecodable):
                    raise MalformedRequestError()
                if self._limiter is None:
                    response = await inner(request, context)
                else:
                    async with self._limiter.admit():
                        response = await inner(request, context)
                return response
            except CrossrankError as exc:
                code = exc.code
                await context.abort_with_status(rpc_status.to_status(to_status(exc, request_id)))
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                if context.code() not in (None, grpc.StatusCode.OK):  # an abort raised by grpc itself
                    code = context.code()
                    raise
                code = grpc.StatusCode.INTERNAL
                logger.exception("request %s (%s) failed", request_id, short)
                internal = CrossrankError(f"internal error (request id {request_id})")
                await context.abort_with_status(rpc_status.to_status(to_status(internal, request_id)))
            finally:
                elapsed = time.perf_counter() - started
                model = getattr(response, "model", "") or getattr(request, "model", "") or "-"
                access_log.info("request_id=%s method=%s model=%s pairs=%d code=%s latency_ms=%.1f",
                                request_id, short, model, _pairs(request), code.name, elapsed * 1000,
                                extra={"request_id": request_id, "method": short, "model": model,
                                       "pairs": _pairs(request), "code": code.name,
                                       "latency_ms": round(elapsed * 1000, 2)})
                if self._metrics:
                    self._metrics.in_flight.dec()
                    self._metrics.requests.labels(short, model, code.name).inc()
                    self._metrics.latency.labels(short).observe(elapsed)
                    usage = getattr(response, "usage", None)
                    if usage is not None:
                        self._metrics.pairs.labels(model).inc(usage.pairs)
                        self._metrics.tokens.labels(model).inc(usage.tokens)
            raise AssertionError("unreachable")  # abort_with_status always raises

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer)
