"""The base of every config section, the value types sections share, and zot's durations.

Durations are written in zot's form (``"90s"``, ``"10m"``, ``"1h30m"``, ``"24h"``).
Sections built on :class:`ZotSection` match their keys in any case, as zot's own loader
does: zot reads its config through viper, which lower-cases every key, so zot's own
examples write ``"Ratelimit": {"Rate": 10}`` as readily as ``"ratelimit": {"rate": 10}``.
Only a section's own keys are matched this way; the keys of a mapping inside it
(repository globs, group names) keep their case.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

#: The hour and the day of zot's defaults (GC's delay and interval, retention, scrub),
#: written once here; each default is named in the section that owns it.
HOUR = 3600.0
DAY = 24 * HOUR

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": HOUR, "d": DAY}


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


class Section(BaseModel):
    """A config section: zot's camelCase keys, unknown keys kept so they can be reported."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


#: Seconds, written in the config as a duration string (``"90s"``, ``"1h"``).
Duration = Annotated[float, BeforeValidator(parse_duration)]


class ZotSection(Section):
    """A section whose declared keys match in any case (``failDelay``, ``faildelay`` ...)."""

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        canonical: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            key = field.alias or name
            canonical.setdefault(key.lower(), key)
            canonical.setdefault(name.lower(), key)
        out: dict[Any, Any] = {}
        for key, value in data.items():
            target = canonical.get(key.lower()) if isinstance(key, str) else None
            if target is not None and target not in data and target not in out:
                out[target] = value
            else:
                out[key] = value
        return out
