"""Reading a config file: parse, validate, and name what is wrong or ignored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dockyard.config.model import Config
from dockyard.config.sync import unsupported_sync_keys
from dockyard.util.globs import never_matches


class ConfigError(ValueError):
    """A config that cannot be served; the message names the key."""


def _unknown_keys(model: BaseModel, prefix: str = "") -> list[str]:
    found = []
    for key, value in (model.model_extra or {}).items():
        # Name what is inside an unknown section (extensions.ui, not just extensions).
        subs = list(value) if isinstance(value, dict) and value else [None]
        found += [f"{prefix}{key}" + (f".{sub}" if sub is not None else "") for sub in subs]
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{field.alias or name}"
        if isinstance(value, BaseModel):
            found += _unknown_keys(value, f"{key}.")
        elif isinstance(value, dict):
            for sub, item in value.items():
                if isinstance(item, BaseModel):
                    found += _unknown_keys(item, f"{key}.{sub}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += _unknown_keys(item, f"{key}[{i}].")
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
    unknown = _unknown_keys(config)
    warnings = [
        f"config key {key!r} is not implemented by dockyard yet and is ignored" for key in unknown
    ]
    warnings += _dead_globs(config)
    warnings += [
        f"config key {key!r} is accepted but not acted on by dockyard"
        for key in unsupported_sync_keys(config.extensions.sync)
    ]
    return config, warnings


def _dead_globs(config: Config) -> list[str]:
    """``accessControl`` globs no repository name can match: a typo that grants nothing."""
    access = config.http.access_control
    if access is None:
        return []
    found = []
    for glob in access.repositories:
        why = never_matches(glob)
        if why is not None:
            found.append(
                f"http.accessControl.repositories.{glob!r}: this glob can never match a "
                f"repository, so its policies apply to nothing: {why}"
            )
    return found
