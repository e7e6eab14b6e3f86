"""Reads an HTTP request body under the read deadline and byte admission, and decodes it as JSON.

The deadline: the first 64 KiB must arrive within `timeout_s` of the start, and the rest at least at
`min_bytes_per_s` on average after that (with the same slack), so a stalled or trickling upload ends with 408
instead of holding its connection and memory; a body with or without a declared length alike. Every piece is
counted against admission's byte bound as it arrives (`Reservation.take`), never the length the client
declares. Decoding refuses what Python's json would raise on beyond JSON syntax (nesting deeper than the
recursion limit, integers over 4,300 digits) and lone surrogates anywhere in the body, which no UTF-8 text
can hold.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from crossrank.gateway.core.admission import Reservation
from crossrank.gateway.core.errors import (
    ClientClosedError,
    InvalidArgumentError,
    MessageTooLargeError,
    ReadTimeoutError,
    UnsupportedMediaTypeError,
)

FIRST_BYTES = 64 * 1024  # what must arrive within the read timeout; the floor rate applies after it
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int = 32 * 1024 * 1024
    timeout_s: float = 10.0
    min_bytes_per_s: float = 1024 * 1024


def require_json(content_type: str | None) -> None:
    """No Content-Type (curl -d with -H dropped, simple clients) is taken as JSON; anything else must be
    application/json or application/*+json, in UTF-8 if a charset is named."""
    if content_type is None or not content_type.strip():
        return
    mime, *params = (part.strip().lower() for part in content_type.split(";"))
    charset = next((p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")), "utf-8")
    json_type = mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))
    if not json_type or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError(content_type)


async def read_body(request: web.Request, reservation: Reservation, limits: ReadLimits) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limits.max_bytes:
        raise MessageTooLargeError(limits.max_bytes)  # declared too large: refused before reading
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks: list[bytes] = []
    received = 0
    while True:
        allowed = started + limits.timeout_s + max(0, received - FIRST_BYTES) / limits.min_bytes_per_s
        remaining = allowed - loop.time()
        if remaining <= 0:
            raise ReadTimeoutError("the request body")
        try:
            chunk = await asyncio.wait_for(request.content.readany(), remaining)
        except asyncio.TimeoutError:
            raise ReadTimeoutError("the request body") from None
        except ConnectionError:
            raise ClientClosedError() from None
        except HttpProcessingError:
            if request.transport is None or request.transport.is_closing():
                raise ClientClosedError() from None  # a body cut short because its client left
            raise InvalidArgumentError("the request body's framing is invalid (chunked encoding or length)",
                                       "MALFORMED_REQUEST") from None
        if not chunk:
            return b"".join(chunks)
        received += len(chunk)
        if received > limits.max_bytes:
            raise MessageTooLargeError(limits.max_bytes)
        reservation.take(len(chunk))
        chunks.append(chunk)


def decode_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidArgumentError("the body nests arrays or objects too deeply", "MALFORMED_REQUEST") from None
    except ValueError:  # bad syntax, bad UTF-8, an integer over Python's 4,300-digit conversion limit
        raise InvalidArgumentError("the body is not valid JSON", "MALFORMED_REQUEST") from None
    if not isinstance(body, dict):
        raise InvalidArgumentError("the body must be a JSON object", "MALFORMED_REQUEST")
    _require_unicode(body)
    return body


def _require_unicode(body: dict[str, Any]) -> None:
    """Refuses a string anywhere in `body` with a lone surrogate (JSON's "\\ud800" escape): such a string has
    no UTF-8 form, so it could reach neither the log nor Triton. Iterative: the depth JSON allows (near
    Python's recursion limit) must not overflow the check itself."""
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                raise InvalidArgumentError(f"{path or 'a key'} holds a lone surrogate (\\ud800-\\udfff), which is "
                                           "not text", "MALFORMED_REQUEST", path or None)
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append(("", key))
                stack.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
