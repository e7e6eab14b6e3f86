"""Errors the gateway core raises, with the core's own code enum: no transport lives here.

Each transport maps `ErrorCode` to its own status in one table at its edge (`grpc_interceptor.GRPC_STATUS`,
`http_errors.HTTP_STATUS`, `tei.TEI_HTTP`). A new error kind is one class here; a new code is one member here
plus one row in each table (unit tests check that every code has a row in each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ErrorCode(Enum):
    """What went wrong, as the client should act on it. The names follow the canonical codes of Google's API
    design guide (which gRPC uses too), so metrics and the access log read the same on every transport."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"  # bad input: do not retry unchanged
    NOT_FOUND = "NOT_FOUND"  # an unknown model
    UNAUTHENTICATED = "UNAUTHENTICATED"  # missing or wrong API key
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"  # over capacity: retry with backoff
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"  # the request itself is over the size limit: retrying cannot help
    UNAVAILABLE = "UNAVAILABLE"  # the backend is down or not ready: retry
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"  # the request's deadline passed
    CANCELLED = "CANCELLED"  # the client went away
    INTERNAL = "INTERNAL"  # our bug or the backend's fault; details in the log only
    READ_TIMEOUT = "READ_TIMEOUT"  # the request did not arrive within the server's read deadline
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # an HTTP body that is not JSON

    @property
    def label(self) -> str:
        """The code's name in metrics and the access log, one of the canonical codes: a message over the size
        limit counts as RESOURCE_EXHAUSTED, as gRPC's own refusal of one does, so both transports count it
        alike; a request that did not arrive in time as DEADLINE_EXCEEDED; a body not JSON as INVALID_ARGUMENT."""
        return _LABELS.get(self, self.value)


_LABELS = {ErrorCode.MESSAGE_TOO_LARGE: "RESOURCE_EXHAUSTED", ErrorCode.READ_TIMEOUT: "DEADLINE_EXCEEDED",
           ErrorCode.UNSUPPORTED_MEDIA_TYPE: "INVALID_ARGUMENT"}


@dataclass(frozen=True)
class FieldViolation:
    field: str  # request field path, for example "documents[3]"
    description: str


@dataclass
class CrossrankError(Exception):
    """Base: a code, a machine-readable reason, a message safe to show the client."""

    message: str
    reason: str = "INTERNAL"
    violations: tuple[FieldViolation, ...] = field(default_factory=tuple)
    code: ErrorCode = ErrorCode.INTERNAL

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(CrossrankError):
    def __init__(self, message: str, reason: str, field_path: str | None = None) -> None:
        violations = (FieldViolation(field_path, message),) if field_path else ()
        super().__init__(message, reason, violations, ErrorCode.INVALID_ARGUMENT)


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
                         (FieldViolation("model", "unknown model"),), ErrorCode.NOT_FOUND)


class WrongTaskError(CrossrankError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "WRONG_TASK", (FieldViolation("model", message),), ErrorCode.INVALID_ARGUMENT)


class BackendUnavailableError(CrossrankError):
    def __init__(self, message: str = "the inference server is not ready; retry later") -> None:
        super().__init__(message, "BACKEND_UNAVAILABLE", (), ErrorCode.UNAVAILABLE)


class ModelGoneError(BackendUnavailableError):
    """The backend no longer serves a model the gateway knew (unloaded from an external Triton): UNAVAILABLE
    for this request, and the core forgets the model, so the next one gets NOT_FOUND if it is really gone."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class DeadlineError(CrossrankError):
    def __init__(self) -> None:
        super().__init__("the request's deadline passed before scoring finished", "DEADLINE_EXCEEDED", (),
                         ErrorCode.DEADLINE_EXCEEDED)


class MessageTooLargeError(CrossrankError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the {limit}-byte limit (limits.max_message_bytes)",
                         "MESSAGE_TOO_LARGE", (), ErrorCode.MESSAGE_TOO_LARGE)


class BackendError(CrossrankError):
    """The backend failed in a way that is our bug or its fault; the details go to the log only."""

    def __init__(self) -> None:
        super().__init__("internal error", "INTERNAL", (), ErrorCode.INTERNAL)


class UnauthenticatedError(CrossrankError):
    def __init__(self) -> None:
        super().__init__("missing or invalid API key: send metadata 'authorization: Bearer <key>'",
                         "UNAUTHENTICATED", (), ErrorCode.UNAUTHENTICATED)


class ShuttingDownError(CrossrankError):
    """The server is stopping (SIGTERM): it finishes what it accepted and refuses the rest; retry elsewhere."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down; retry on another replica", "SHUTTING_DOWN", (),
                         ErrorCode.UNAVAILABLE)


class OverloadedError(CrossrankError):
    def __init__(self, what: str) -> None:
        super().__init__(f"the server is at capacity ({what}); retry with backoff",
                         "OVERLOADED", (), ErrorCode.RESOURCE_EXHAUSTED)


class MalformedRequestError(CrossrankError):
    def __init__(self) -> None:
        super().__init__("the request is not a valid protobuf message (strings must be UTF-8)",
                         "MALFORMED_REQUEST", (), ErrorCode.INVALID_ARGUMENT)


class ReadTimeoutError(CrossrankError):
    """The request did not arrive within the server's read deadline (a stalled or too slow upload)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} did not arrive in time (limits.read_timeout_s, limits.min_read_bytes_per_s)",
                         "READ_TIMEOUT", (), ErrorCode.READ_TIMEOUT)


class ClientClosedError(CrossrankError):
    """The client went away before its request arrived whole; nobody reads the answer (HTTP logs it as 499)."""

    def __init__(self) -> None:
        super().__init__("the client closed the connection before its request arrived", "CLIENT_CLOSED", (),
                         ErrorCode.CANCELLED)


class UnsupportedMediaTypeError(CrossrankError):
    def __init__(self, content_type: str) -> None:
        super().__init__(f"the body must be JSON (Content-Type: application/json, UTF-8), not {echoed(content_type)}",
                         "UNSUPPORTED_MEDIA_TYPE", (), ErrorCode.UNSUPPORTED_MEDIA_TYPE)
