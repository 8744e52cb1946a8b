"""Configuration in zot's format (JSON or YAML), with defaults that serve without a file.

Keys dockyard implements are typed and validated; a bad value stops start-up with the
key's dotted path and what is wrong. Keys from zot's format that dockyard does not
implement yet are collected as warnings and otherwise ignored, so a zot config file loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_ROOT = "./dockyard-data"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """A config that cannot be served; the message names the key."""


def parse_duration(value: object) -> float:
    """Seconds in a Go-style duration string such as ``"90s"``, ``"1h30m"`` or ``"24h"``."""
    if not isinstance(value, str):
        raise ValueError(f"must be a duration string such as '90s' or '1h', got {value!r}")
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * _UNITS[match[2]]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"must be a duration such as '90s', '1h' or '24h', got {value!r}")
    return total


class _Section(BaseModel):
    """Sections keep unknown keys so they can be reported, not rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Retention(_Section):
    delay: float = 24 * 3600.0

    _dur = field_validator("delay", mode="before")(lambda v: parse_duration(v))


class SubPath(_Section):
    root_directory: Path = Field(alias="rootDirectory")
    dedupe: bool = True
    gc: bool = True
    gc_delay: float = Field(3600.0, alias="gcDelay")

    _dur = field_validator("gc_delay", mode="before")(lambda v: parse_duration(v))


class Storage(_Section):
    root_directory: Path = Field(Path(DEFAULT_ROOT), alias="rootDirectory")
    dedupe: bool = True
    gc: bool = True
    gc_delay: float = Field(3600.0, alias="gcDelay")
    gc_interval: float = Field(3600.0, alias="gcInterval")
    retention: Retention = Field(default_factory=Retention)
    sub_paths: dict[str, SubPath] = Field(default_factory=dict, alias="subPaths")

    _dur = field_validator("gc_delay", "gc_interval", mode="before")(lambda v: parse_duration(v))

    @field_validator("sub_paths")
    @classmethod
    def _prefixes(cls, value: dict[str, SubPath]) -> dict[str, SubPath]:
        for prefix in value:
            if not re.fullmatch(r"/?[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*", prefix):
                raise ValueError(f"subPaths key {prefix!r} must be one repository path part")
        return value


class Http(_Section):
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: object) -> int:
        try:
            port = int(value) if isinstance(value, str | int) and value is not True else -1
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise ValueError(f"must be a port number from 1 to 65535, got {value!r}")
        return port


class Log(_Section):
    level: Literal["trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"] = "info"
    output: str | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class Config(_Section):
    dist_spec_version: str = Field("1.1.1", alias="distSpecVersion")
    storage: Storage = Field(default_factory=Storage)
    http: Http = Field(default_factory=Http)
    log: Log = Field(default_factory=Log)


def _unknown_keys(model: BaseModel, prefix: str = "") -> list[str]:
    found = []
    for key, value in (model.model_extra or {}).items():
        # Name what is inside an unknown section (extensions.ui, not just extensions).
        subs = list(value) if isinstance(value, dict) and value else [None]
        found += [f"{prefix}{key}" + (f".{sub}" if sub is not None else "") for sub in subs]
    for name in type(model).model_fields:
        value = getattr(model, name)
        field = type(model).model_fields[name]
        key = f"{prefix}{field.alias or name}"
        if isinstance(value, BaseModel):
            found += _unknown_keys(value, f"{key}.")
        elif isinstance(value, dict):
            for sub, item in value.items():
                if isinstance(item, BaseModel):
                    found += _unknown_keys(item, f"{key}.{sub}.")
    return found


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def load_config(path: Path | None) -> tuple[Config, list[str]]:
    """Read and validate a config; return it with warnings about ignored keys.

    Raises ConfigError with a message naming the key when the file cannot be served.
    """
    raw: Any = {}
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        try:
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"config {path} is not valid JSON or YAML: {exc}") from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path} must be a mapping of keys to values")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from exc
    warnings = [
        f"config key {key!r} is not implemented by dockyard yet and is ignored"
        for key in _unknown_keys(config)
    ]
    return config, warnings
