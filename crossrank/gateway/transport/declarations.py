"""The one place an HTTP request body meets its declaration: a pydantic model that the handler validates with
and that the OpenAPI document (openapi.py) is generated from, so the two never disagree.

A declaration forbids fields it does not name (a typo or another API's field is never silently ignored) and
takes JSON's types strictly ("3" is not a number). The first problem becomes one `InvalidArgumentError`
naming its field; the transport gives it its own status and shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from crossrank.gateway.core.errors import InvalidArgumentError

M = TypeVar("M", bound=BaseModel)


class Declaration(BaseModel):
    """Base of every request declaration: unknown fields refused, types strict."""

    model_config = ConfigDict(extra="forbid", strict=True)


def validate(declaration: type[M], body: Mapping[str, Any] | None,
             foreign: Mapping[str, str] | None = None) -> M:
    """`body` as `declaration`. `foreign` names fields other rerank APIs define that this route does not
    honour, each with what to do instead: such a field is refused with that advice."""
    for name in body or {}:
        if foreign and name in foreign and name not in declaration.model_fields:
            raise InvalidArgumentError(f"{name} is not supported here: {foreign[name]}", "UNSUPPORTED_FIELD", name)
    try:
        return declaration.model_validate(body or {})
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = _path(first["loc"])
        if first["type"] == "extra_forbidden":
            raise InvalidArgumentError(f"{where} is not a field of this request", "UNKNOWN_FIELD", where) from None
        # A union (a document as a string or an object) fails once per form it accepts: name them all.
        reasons = list(dict.fromkeys(_describe(e, where) for e in errors if _path(e["loc"]).startswith(where)))
        message = reasons[0] if len(reasons) == 1 else "none of its forms matches: " + "; or ".join(reasons)
        raise InvalidArgumentError(f"{where}: {message}", "INVALID_FIELD", where) from None


def _describe(error: Any, where: str) -> str:
    """An error's message, prefixed with its place inside `where` when it lies deeper."""
    inner = _path(error["loc"])[len(where):].lstrip(".")
    return f"{inner}: {error['msg']}" if inner else str(error["msg"])


def _path(location: tuple[int | str, ...]) -> str:
    """pydantic's error location as a field path, `documents[3]`; union branch names left out."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "float", "bool") or "[" in part or part[:1].isupper():
            continue  # which form of a union pydantic tried (a type, or a declaration's class name)
        else:
            out += f".{part}" if out else part
    return out or "body"
