"""Typed client errors, read back from the server's rich `google.rpc.Status`."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class CrossrankClientError(Exception):
    """A failed call: gRPC `code`, server `message`, `reason` (ErrorInfo) and `field_violations`."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    request_id: str = ""
    field_violations: list[FieldViolation] = field(default_factory=list)

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> CrossrankClientError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        out = cls(code=code, message=message or "")
        try:
            status = rpc_status.from_call(error)
        except Exception:  # a status without rich details, or a malformed one
            status = None
        if status is None:
            return out
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                out.reason = info.reason
                out.request_id = info.metadata.get("request_id", "")
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                out.field_violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        return out
