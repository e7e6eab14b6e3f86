"""Errors the gateway core raises; the interceptor turns each into one gRPC status (see interceptor.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc


@dataclass(frozen=True)
class FieldViolation:
    field: str  # request field path, for example "documents[3]"
    description: str


@dataclass
class CrossrankError(Exception):
    """Base: a status code, a machine-readable reason, a message safe to show the client."""

    message: str
    reason: str = "INTERNAL"
    violations: tuple[FieldViolation, ...] = field(default_factory=tuple)
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(CrossrankError):
    def __init__(self, message: str, reason: str, field_path: str | None = None) -> None:
        violations = (FieldViolation(field_path, message),) if field_path else ()
        super().__init__(message, reason, violations, grpc.StatusCode.INVALID_ARGUMENT)


MAX_ECHOED_CHARS = 64  # the most of a client's string that an error message repeats


def echoed(text: str) -> str:
    """A client's string as an error message shows it: quoted, escaped, cut to 64 characters (a message
    travels in gRPC metadata, whose size is limited: an echoed 10 kB name would overflow it)."""
    shown = repr(text[:MAX_ECHOED_CHARS])
    return shown if len(text) <= MAX_ECHOED_CHARS else f"{shown}... ({len(text)} characters)"


class ModelNotFoundError(CrossrankError):
    def __init__(self, name: str, available: list[str]) -> None:
        listed = ", ".join(available) or "none"
        super().__init__(f"model {echoed(name)} is not served; served models: {listed}", "MODEL_NOT_FOUND",
                         (FieldViolation("model", "unknown model"),), grpc.StatusCode.NOT_FOUND)


class WrongTaskError(CrossrankError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "WRONG_TASK", (FieldViolation("model", message),),
                         grpc.StatusCode.INVALID_ARGUMENT)


class BackendUnavailableError(CrossrankError):
    def __init__(self, message: str = "the inference server is not ready; retry later") -> None:
        super().__init__(message, "BACKEND_UNAVAILABLE", (), grpc.StatusCode.UNAVAILABLE)


class ModelGoneError(BackendUnavailableError):
    """The backend no longer serves a model the gateway knew (unloaded from an external Triton): UNAVAILABLE
    for this request, and the core forgets the model, so the next one gets NOT_FOUND if it is really gone."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class DeadlineError(CrossrankError):
    def __init__(self) -> None:
        super().__init__("the request's deadline passed before scoring finished", "DEADLINE_EXCEEDED", (),
                         grpc.StatusCode.DEADLINE_EXCEEDED)


class MessageTooLargeError(CrossrankError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the {limit}-byte limit (limits.max_message_bytes)",
                         "MESSAGE_TOO_LARGE", (), grpc.StatusCode.RESOURCE_EXHAUSTED)


class BackendError(CrossrankError):
    """The backend failed in a way that is our bug or its fault; the details go to the log only."""

    def __init__(self) -> None:
        super().__init__("internal error", "INTERNAL", (), grpc.StatusCode.INTERNAL)


class UnauthenticatedError(CrossrankError):
    def __init__(self) -> None:
        super().__init__("missing or invalid API key: send metadata 'authorization: Bearer <key>'",
                         "UNAUTHENTICATED", (), grpc.StatusCode.UNAUTHENTICATED)


class OverloadedError(CrossrankError):
    def __init__(self, what: str) -> None:
        super().__init__(f"the server is at capacity ({what}); retry with backoff",
                         "OVERLOADED", (), grpc.StatusCode.RESOURCE_EXHAUSTED)


class MalformedRequestError(CrossrankError):
    def __init__(self) -> None:
        super().__init__("the request is not a valid protobuf message (strings must be UTF-8)",
                         "MALFORMED_REQUEST", (), grpc.StatusCode.INVALID_ARGUMENT)


class ReadTimeoutError(CrossrankError):
    """The request did not arrive within the server's read deadline (a stalled or too slow upload)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} did not arrive in time (limits.read_timeout_s, limits.min_read_bytes_per_s)",
                         "READ_TIMEOUT", (), grpc.StatusCode.DEADLINE_EXCEEDED)


class ClientClosedError(CrossrankError):
    """The client went away before its request arrived whole; nobody reads the answer (HTTP logs it as 499)."""

    def __init__(self) -> None:
        super().__init__("the client closed the connection before its request arrived", "CLIENT_CLOSED", (),
                         grpc.StatusCode.CANCELLED)


class UnsupportedMediaTypeError(CrossrankError):
    def __init__(self, content_type: str) -> None:
        super().__init__(f"the body must be JSON (Content-Type: application/json, UTF-8), not {echoed(content_type)}",
                         "UNSUPPORTED_MEDIA_TYPE", (), grpc.StatusCode.INVALID_ARGUMENT)
