"""The gateway's settings: one frozen, validated object built once at start-up.

Sources, lowest to highest precedence: built-in defaults, the YAML file (server_config/crossrank.yaml
documents every key), `CROSSRANK_*` environment variables, command-line flags. Nothing here reads the
environment or argv at import time; `load` gets them as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from crossrank.gateway.core.validation import Limits

DEFAULT_CONFIG = Path("server_config/crossrank.yaml")


class SettingsError(ValueError):
    """A setting is missing, unknown or of the wrong type; the message names the key."""


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 50051
    health_port: int = -1
    http_port: int = 8080
    repository: Path = Path("model_repository")
    models: tuple[str, ...] = ()
    default_model: str = ""
    triton_url: str = ""
    triton_startup_timeout_s: float = 180.0
    max_documents: int = 1000
    max_text_chars: int = 262_144
    max_message_bytes: int = 32 * 1024 * 1024
    shutdown_grace_s: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_port: int = 9400
    triton_grpc_port: int = 0
    triton_metrics_port: int = 0
    max_in_flight: int = 32
    max_queue: int = 256
    max_inflight_bytes: int = 16 * 1024 * 1024
    http_timeout_s: float = 60.0
    read_timeout_s: float = 10.0
    min_read_bytes_per_s: int = 1024 * 1024
    http_header_timeout_s: float = 75.0
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    api_keys: tuple[str, ...] = ()
    api_keys_file: str = ""

    def __repr__(self) -> str:  # API keys never reach a log line
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_keys"] = f"<{len(self.api_keys)} keys>"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def limits(self) -> Limits:
        return Limits(max_documents=self.max_documents, max_text_chars=self.max_text_chars)


# YAML key path -> (field, environment variable)
_KEYS: dict[str, tuple[str, str]] = {
    "listen.host": ("host", "CROSSRANK_HOST"),
    "listen.port": ("port", "CROSSRANK_PORT"),
    "listen.health_port": ("health_port", "CROSSRANK_HEALTH_PORT"),
    "listen.http_port": ("http_port", "CROSSRANK_HTTP_PORT"),
    "repository": ("repository", "CROSSRANK_REPOSITORY"),
    "models.sources": ("models", "CROSSRANK_MODELS"),
    "models.default": ("default_model", "CROSSRANK_DEFAULT_MODEL"),
    "triton.url": ("triton_url", "CROSSRANK_TRITON_URL"),
    "triton.startup_timeout_s": ("triton_startup_timeout_s", "CROSSRANK_TRITON_STARTUP_TIMEOUT_S"),
    "limits.max_documents": ("max_documents", "CROSSRANK_MAX_DOCUMENTS"),
    "limits.max_text_chars": ("max_text_chars", "CROSSRANK_MAX_TEXT_CHARS"),
    "limits.max_message_bytes": ("max_message_bytes", "CROSSRANK_MAX_MESSAGE_BYTES"),
    "shutdown.grace_s": ("shutdown_grace_s", "CROSSRANK_SHUTDOWN_GRACE_S"),
    "logging.level": ("log_level", "CROSSRANK_LOG_LEVEL"),
    "logging.format": ("log_format", "CROSSRANK_LOG_FORMAT"),
    "metrics.port": ("metrics_port", "CROSSRANK_METRICS_PORT"),
    "triton.grpc_port": ("triton_grpc_port", "CROSSRANK_TRITON_GRPC_PORT"),
    "triton.metrics_port": ("triton_metrics_port", "CROSSRANK_TRITON_METRICS_PORT"),
    "limits.max_in_flight": ("max_in_flight", "CROSSRANK_MAX_IN_FLIGHT"),
    "limits.max_queue": ("max_queue", "CROSSRANK_MAX_QUEUE"),
    "limits.max_inflight_bytes": ("max_inflight_bytes", "CROSSRANK_MAX_INFLIGHT_BYTES"),
    "limits.http_timeout_s": ("http_timeout_s", "CROSSRANK_HTTP_TIMEOUT_S"),
    "limits.read_timeout_s": ("read_timeout_s", "CROSSRANK_READ_TIMEOUT_S"),
    "limits.min_read_bytes_per_s": ("min_read_bytes_per_s", "CROSSRANK_MIN_READ_BYTES_PER_S"),
    "limits.http_header_timeout_s": ("http_header_timeout_s", "CROSSRANK_HTTP_HEADER_TIMEOUT_S"),
    "tls.cert_file": ("tls_cert_file", "CROSSRANK_TLS_CERT_FILE"),
    "tls.key_file": ("tls_key_file", "CROSSRANK_TLS_KEY_FILE"),
    "tls.client_ca_file": ("tls_client_ca_file", "CROSSRANK_TLS_CLIENT_CA_FILE"),
    "auth.api_keys": ("api_keys", "CROSSRANK_API_KEYS"),
    "auth.api_keys_file": ("api_keys_file", "CROSSRANK_API_KEYS_FILE"),
}
_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path not in _KEYS:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _convert(field: str, value: Any, key: str) -> Any:
    kind = _FIELD_TYPES[field]
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "Path":
            return Path(str(value))
        if kind == "tuple[str, ...]":
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                raise ValueError
            return tuple(str(v).strip() for v in items if str(v).strip())
        if not isinstance(value, str | int | float):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {key}: expected {kind}, got {value!r}") from None


def _check(settings: Settings) -> Settings:
    for key, port, lowest in (("listen.port", settings.port, 0), ("metrics.port", settings.metrics_port, -1),
                              ("listen.health_port", settings.health_port, -1),
                              ("listen.http_port", settings.http_port, -1),
                              ("triton.grpc_port", settings.triton_grpc_port, 0),
                              ("triton.metrics_port", settings.triton_metrics_port, 0)):
        if not lowest <= port <= 65535:
            raise SettingsError(f"setting {key}: {port} is not a port number")
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"setting logging.format: text or json, got {settings.log_format!r}")
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise SettingsError("settings tls.cert_file and tls.key_file: give both or neither")
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        raise SettingsError("setting tls.client_ca_file: mutual TLS needs tls.cert_file and tls.key_file")
    for key, path in (("tls.cert_file", settings.tls_cert_file), ("tls.key_file", settings.tls_key_file),
                      ("tls.client_ca_file", settings.tls_client_ca_file),
                      ("auth.api_keys_file", settings.api_keys_file)):
        if path and not Path(path).is_file():
            raise SettingsError(f"setting {key}: no file at {path}")
    if settings.max_queue < 0:
        raise SettingsError(f"setting limits.max_queue: must be 0 or more, got {settings.max_queue}")
    for key, value in (("limits.max_in_flight", settings.max_in_flight),
                       ("limits.max_documents", settings.max_documents),
                       ("limits.max_text_chars", settings.max_text_chars),
                       ("limits.max_message_bytes", settings.max_message_bytes),
                       ("limits.max_inflight_bytes", settings.max_inflight_bytes),
                       ("limits.read_timeout_s", settings.read_timeout_s),
                       ("limits.min_read_bytes_per_s", settings.min_read_bytes_per_s),
                       ("limits.http_header_timeout_s", settings.http_header_timeout_s)):
        if value <= 0:
            raise SettingsError(f"setting {key}: must be positive, got {value}")
    level = settings.log_level.upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(f"setting logging.level: one of {', '.join(_LOG_LEVELS)}, got {settings.log_level!r}")
    return replace(settings, log_level=level)


def load(config: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any]) -> Settings:
    """Builds the settings: file (if given or the default exists), then environment, then `overrides`
    (field name -> value, from command-line flags; None means "not given")."""
    values: dict[str, Any] = {}
    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise SettingsError(f"config file {path}: expected a mapping at the top level")
        for key, value in _flatten(data).items():
            if key not in _KEYS:
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
            field = _KEYS[key][0]
            values[field] = _convert(field, value, key)
    for field, env in _KEYS.values():
        if env in environ:
            values[field] = _convert(field, environ[env], env)
    for field, value in overrides.items():
        if value is not None:
            values[field] = _convert(field, value, f"--{field.replace('_', '-')}")
    return _check(Settings(**values))
