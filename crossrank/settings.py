"""The gateway's settings: each declared once, built once at start-up into one frozen, validated object.

A setting is one field of `Settings`, declared with `setting(...)`: its name and type (the field's), default,
YAML key, environment variable (`CROSSRANK_` + the field's name in capitals), command-line flag where it has
one, validation and one line of help. Everything else is derived from those declarations: loading from the
file and the environment, `crossrank serve`'s flags and `--help`, the documented YAML file
(server_config/crossrank.yaml) and the settings table in docs/operations.md (both written by
`tools/gen_settings_docs.py`; a test checks the committed ones). Adding a setting is adding one field here.

Sources, lowest to highest precedence: built-in defaults, the YAML file, `CROSSRANK_*` environment variables,
command-line flags. Nothing here reads the environment or argv at import time; `load` gets them as arguments.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from crossrank.gateway.core.validation import Limits

DEFAULT_CONFIG = Path("server_config/crossrank.yaml")
ENV_PREFIX = "CROSSRANK_"


class SettingsError(ValueError):
    """A setting is missing, unknown or of the wrong type; the message names the key."""


# Checks: each takes a converted value and returns it (possibly normalized) or raises ValueError saying why.
Check = Callable[[Any], Any]


def port_number(lowest: int = 0) -> Check:
    """A port number; `lowest` -1 lets -1 mean "off", 0 means "a free port chosen at start"."""
    def check(value: int) -> int:
        if not lowest <= value <= 65535:
            raise ValueError(f"{value} is not a port number")
        return value
    return check


def positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def not_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def one_of(*choices: str, fold_case: bool = False) -> Check:
    def check(value: str) -> str:
        normal = value.upper() if fold_case else value
        if normal not in choices:
            raise ValueError(f"one of {', '.join(choices)}, got {value!r}")
        return normal
    check.choices = choices  # type: ignore[attr-defined]  # offered as the flag's choices when case matters
    check.fold_case = fold_case  # type: ignore[attr-defined]
    return check


def existing_file(value: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError(f"no file at {value}")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting's declaration; `field`, `kind` and `default` come from the `Settings` field it declares."""

    key: str  # its path in the YAML file, for example "listen.port"
    help: str  # one line: `serve --help`, the docs table and the YAML file's comment
    flag: str = ""  # `crossrank serve`'s flag ("" = none)
    check: Check | None = None
    details: str = ""  # more for the YAML file's comment, where one line is not enough
    field: str = ""
    kind: Any = None
    default: Any = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.field.upper()

    @property
    def section(self) -> str:
        return self.key.rpartition(".")[0]

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(getattr(self.check, "choices", ()))


def setting(key: str, default: Any, help: str, *, flag: str = "", check: Check | None = None,
            details: str = "") -> Any:
    """Declares a `Settings` field (see the module's docstring)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(key, help, flag, check, details)})


def request_limit(name: str, help: str) -> Any:
    """Declares a setting of the core's per-request `Limits` (its default is the core's, key `limits.<name>`)."""
    return setting(f"limits.{name}", getattr(Limits, name), help, check=positive)


@dataclass(frozen=True)
class Settings:
    # listen
    host: str = setting(
        "listen.host", "0.0.0.0", "Address the gRPC, HTTP and metrics servers bind to.", flag="--host",
        details="0.0.0.0 = every interface (containers, Kubernetes); 127.0.0.1 = this machine only.")
    port: int = setting(
        "listen.port", 50051, "gRPC port (Rerank, Classify, ListModels, health, reflection).", flag="--port",
        check=port_number())
    health_port: int = setting(
        "listen.health_port", -1, "Extra plaintext port with the health service only; -1 = off.", check=port_number(-1),
        details="For probes that cannot speak TLS (Kubernetes' native gRPC probes) when tls is on.")
    http_port: int = setting(
        "listen.http_port", 8080, "HTTP port of the Cohere- and TEI-compatible API; -1 = off.", flag="--http-port",
        check=port_number(-1),
        details="POST /v1/rerank, /v2/rerank (Cohere/Jina shape); POST /rerank, /predict, GET /info (TEI shape); "
                "GET /health, /openapi.json, /docs. Same API keys, limits, metrics and TLS (when tls.* is set) as "
                "gRPC.")
    # the repository
    repository: Path = setting(  # noqa: RUF009 (setting() returns a dataclasses.field, as field() does)
        "repository", Path("model_repository"), "Triton model repository (export writes it, Triton loads it).",
        flag="--repository")
    # models
    models: tuple[str, ...] = setting(
        "models.sources", (), "Models to serve, as SOURCE or NAME=SOURCE (repeatable flag; comma-separated "
        "variable).", flag="--model",
        details="A Hugging Face id or a local directory, exported into the repository on the first start and "
                "reused afterwards. Empty: every model already in the repository, or the default model "
                "cross-encoder/ms-marco-MiniLM-L-6-v2 when the repository is empty (the offline demo model "
                "where the hub cannot be reached).")
    default_model: str = setting(
        "models.default", "", "Model used when a request leaves `model` empty.", flag="--default-model",
        details="Empty: the first of `sources`, else the first name in alphabetical order.")
    # triton
    triton_url: str = setting(
        "triton.url", "", "gRPC address (host:port) of an external Triton; empty = start the bundled one.",
        flag="--triton-url",
        details="Embedded mode starts the pip-bundled Triton as a child process bound to 127.0.0.1 on free "
                "ports.")
    triton_startup_timeout_s: float = setting(
        "triton.startup_timeout_s", 180.0, "Seconds to wait for the embedded Triton and its models to be ready.")
    triton_grpc_port: int = setting(
        "triton.grpc_port", 0, "The embedded Triton's gRPC port on 127.0.0.1 (internal); 0 = a free port.",
        check=port_number())
    triton_metrics_port: int = setting(
        "triton.metrics_port", 0, "The embedded Triton's Prometheus port on 127.0.0.1; 0 = a free port.",
        check=port_number())
    # limits
    max_documents: int = request_limit("max_documents", "Most documents in one Rerank (or inputs in one Classify).")
    max_text_chars: int = request_limit("max_text_chars",
                                        "Most characters in one text (query, document, text, text_pair).")
    default_chunks_per_document: int = request_limit(
        "default_chunks_per_document",
        "Chunks scored per long document when a chunking request leaves max_chunks_per_document 0.")
    max_chunks_per_document: int = request_limit("max_chunks_per_document",
                                                 "Most chunks a request may ask for per long document.")
    max_instruction_chars: int = request_limit("max_instruction_chars", "Most characters in a request's instruction.")
    max_message_bytes: int = setting(
        "limits.max_message_bytes", 32 * 1024 * 1024,
        "Largest request (gRPC message, HTTP body) in bytes; larger ones are refused.", check=positive)
    max_in_flight: int = setting(
        "limits.max_in_flight", 32, "Requests scored at once.", check=positive,
        details="Beyond it and max_queue, requests are refused at once with RESOURCE_EXHAUSTED (reason "
                "OVERLOADED), which clients retry with backoff.")
    max_queue: int = setting(
        "limits.max_queue", 256, "Requests waiting beyond those scored; any more are refused at once.",
        check=not_negative)
    max_inflight_bytes: int = setting(
        "limits.max_inflight_bytes", 16 * 1024 * 1024,
        "Request bytes the requests in flight and queued may hold together.", check=positive,
        details="The gateway holds about 6 copies of what it admitted while scoring it (docs/operations.md). A "
                "request that would pass it is refused at once (RESOURCE_EXHAUSTED, reason OVERLOADED); one "
                "larger on its own runs when nothing else does.")
    http_timeout_s: float = setting(
        "limits.http_timeout_s", 60.0, "HTTP requests' deadline in seconds, unless the request sets a shorter one.",
        details="Header X-Request-Timeout or field `timeout_s`; past it the request ends with 504. gRPC uses the "
                "client's own deadline.")
    read_timeout_s: float = setting(
        "limits.read_timeout_s", 10.0,
        "Seconds for the first 64 KiB of an HTTP body to arrive (408 READ_TIMEOUT beyond).", check=positive,
        details="So that no slow or stalled client holds what others need. After the first 64 KiB the rest must "
                "keep up limits.min_read_bytes_per_s on average. A gRPC call must deliver its request message "
                "within read_timeout_s + max_message_bytes / min_read_bytes_per_s (42 s by default) or it ends "
                "with DEADLINE_EXCEEDED (reason READ_TIMEOUT). Bytes count against max_inflight_bytes as they "
                "arrive, never by a declared length, and a call takes a max_in_flight / max_queue slot only once "
                "its request has arrived whole.")
    min_read_bytes_per_s: int = setting(
        "limits.min_read_bytes_per_s", 1024 * 1024,
        "Floor rate, bytes per second, of an HTTP body after its first 64 KiB (408 READ_TIMEOUT below it).",
        check=positive, details="An average since the body's start, with limits.read_timeout_s of slack.")
    http_header_timeout_s: float = setting(
        "limits.http_header_timeout_s", 75.0,
        "Seconds an HTTP connection has to send a whole request head, after it opens or after its last response.",
        check=positive,
        details="Otherwise it is closed, so this is also how long an idle keep-alive connection stays open: keep "
                "it above a load balancer's idle timeout (60 s on AWS ALB).")
    # tls
    tls_cert_file: str = setting(
        "tls.cert_file", "", "Server certificate (PEM); with tls.key_file, gRPC and HTTP use TLS.",
        check=existing_file)
    tls_key_file: str = setting("tls.key_file", "", "Server private key (PEM).", check=existing_file)
    tls_client_ca_file: str = setting(
        "tls.client_ca_file", "", "CA bundle (PEM) for client certificates: set = mutual TLS.", check=existing_file,
        details="Clients without a certificate signed by it cannot connect.")
    # auth
    api_keys: tuple[str, ...] = setting(
        "auth.api_keys", (), "API keys accepted as `authorization: Bearer <key>` (comma-separated variable).",
        details="Empty (and no file): no key needed. The health service never needs one, so probes work. Keys "
                "are never logged.")
    api_keys_file: str = setting(
        "auth.api_keys_file", "", "File with one key per line (a mounted Kubernetes Secret); adds to api_keys.",
        check=existing_file)
    # shutdown
    shutdown_grace_s: float = setting(
        "shutdown.grace_s", 30.0, "Seconds in-flight requests get to finish after SIGTERM before they are "
        "cancelled.")
    # metrics
    metrics_port: int = setting(
        "metrics.port", 9400, "Prometheus port (http://HOST:PORT/metrics); 0 = a free port, -1 = off.",
        flag="--metrics-port", check=port_number(-1))
    # logging
    log_level: str = setting(
        "logging.level", "INFO", "DEBUG, INFO, WARNING or ERROR (DEBUG includes Triton's own log).",
        flag="--log-level", check=one_of("DEBUG", "INFO", "WARNING", "ERROR", fold_case=True))
    log_format: str = setting(
        "logging.format", "text", "text, or json (one JSON object per line).", flag="--log-format",
        check=one_of("text", "json"),
        details="Access lines in json carry request_id, method, model, pairs, code and latency_ms.")

    def __repr__(self) -> str:  # API keys never reach a log line
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_keys"] = f"<{len(self.api_keys)} keys>"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})


def _declarations() -> tuple[Setting, ...]:
    hints = typing.get_type_hints(Settings)
    return tuple(replace(f.metadata["setting"], field=f.name, kind=hints[f.name], default=f.default)
                 for f in fields(Settings))


SETTINGS = _declarations()
_BY_KEY = {s.key: s for s in SETTINGS}
# YAML key path -> (field, environment variable)
_KEYS = {s.key: (s.field, s.env) for s in SETTINGS}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path not in _BY_KEY:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind)) if typing.get_origin(kind) is None else str(kind)


def _convert(spec: Setting, value: Any, named: str) -> Any:
    kind = spec.kind
    try:
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is Path:
            return Path(str(value))
        if typing.get_origin(kind) is tuple:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                raise ValueError
            return tuple(str(v).strip() for v in items if str(v).strip())
        if not isinstance(value, str | int | float):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {named}: expected {_type_name(kind)}, got {value!r}") from None


def _check(settings: Settings) -> Settings:
    checked = {}
    for spec in SETTINGS:  # each setting's own rule, from its declaration
        if spec.check is not None:
            try:
                checked[spec.field] = spec.check(getattr(settings, spec.field))
            except ValueError as exc:
                raise SettingsError(f"setting {spec.key}: {exc}") from None
    # Relations between settings.
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise SettingsError("settings tls.cert_file and tls.key_file: give both or neither")
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        raise SettingsError("setting tls.client_ca_file: mutual TLS needs tls.cert_file and tls.key_file")
    if settings.default_chunks_per_document > settings.max_chunks_per_document:
        raise SettingsError("setting limits.default_chunks_per_document: over limits.max_chunks_per_document")
    return replace(settings, **checked)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise SettingsError(f"config file {path}: expected a mapping at the top level")
    values = {}
    for key, value in _flatten(data).items():
        if key not in _BY_KEY:
            raise SettingsError(f"config file {path}: unknown setting {key!r}")
        values[_BY_KEY[key].field] = _convert(_BY_KEY[key], value, key)
    return values


def load(config: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any]) -> Settings:
    """Builds the settings: file (if given or the default exists), then environment, then `overrides`
    (field name -> value, from command-line flags; None means "not given")."""
    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    values = _read_file(path) if path is not None else {}
    by_field = {s.field: s for s in SETTINGS}
    for spec in SETTINGS:
        if spec.env in environ:
            values[spec.field] = _convert(spec, environ[spec.env], spec.env)
    for name, value in overrides.items():
        if value is not None:
            spec = by_field[name]
            values[name] = _convert(spec, value, spec.flag or f"--{name.replace('_', '-')}")
    return _check(Settings(**values))
