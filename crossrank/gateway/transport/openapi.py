"""The HTTP API's route table, its OpenAPI 3.1 document and its browsable page.

Every route is an `Operation`: http_api.py registers the router from the same list this module describes,
and each request and response schema is generated from the pydantic declaration the handler validates with
(declarations.py), so the document lists every route and cannot drift from what the server accepts.
`GET /openapi.json` serves the document; `GET /docs` a Swagger UI page whose assets ship in the
`swagger-ui-py` package (served from `/docs/assets/`, nothing fetched from the network).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from crossrank import __version__

REF = "#/components/schemas/{model}"
ASSETS = "/docs/assets"


@dataclass(frozen=True)
class Operation:
    """One route: what the router registers and what the document says of it."""

    method: str  # GET or POST
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    operation_id: str
    summary: str
    tag: str
    request: Any = None  # the body's declaration (a pydantic model), None for no body
    responses: dict[int, tuple[str, Any]] = field(default_factory=dict)  # status -> (description, type or None)
    description: str = ""
    query: tuple[tuple[str, str], ...] = ()  # optional query parameters: (name, description)


class _Schemas:
    """JSON Schemas of declarations, each named type once under components.schemas."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, kind: Any, mode: str) -> dict[str, Any]:
        schema = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            self.components[kind.__name__] = schema
            return {"$ref": REF.format(model=kind.__name__)}
        return schema


def document(operations: Sequence[Operation], title: str = "crossrank HTTP API") -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
        if op.description:
            entry["description"] = op.description
        if op.query:
            entry["parameters"] = [{"name": name, "in": "query", "required": False, "description": text,
                                    "schema": {"type": "string"}} for name, text in op.query]
        if op.request is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": schemas.of(op.request, "validation")}}}
        responses: dict[str, Any] = {}
        for status, (text, kind) in sorted(op.responses.items()):
            responses[str(status)] = {"description": text}
            if kind is not None:
                media = "text/html" if kind is str else "application/json"
                schema = {"type": "string"} if kind is str else schemas.of(kind, "serialization")
                responses[str(status)]["content"] = {media: {"schema": schema}}
        entry["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__, "description": (
            "Cross-encoder reranking and pair classification over HTTP: Cohere's rerank shape "
            "(/v1/rerank, /v2/rerank) and Hugging Face TEI's (/rerank, /predict, /info). The same models are "
            "served over gRPC (crossrank.v1 and tei.v1). Send `Authorization: Bearer <key>` when the server "
            "has API keys.")},
        "paths": paths,
        "components": {"schemas": schemas.components},
    }


def assets_directory() -> Path | None:
    """Swagger UI's files as the `swagger-ui-py` package ships them, or None when it is not installed."""
    try:
        import swagger_ui
    except ImportError:
        return None
    static = Path(swagger_ui.__file__).parent / "static"
    return static if (static / "swagger-ui-bundle.js").exists() else None


DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>crossrank HTTP API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true}});
  </script>
</body>
</html>
"""
