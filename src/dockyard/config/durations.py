"""Durations in zot's form: ``"90s"``, ``"10m"``, ``"1h30m"``, ``"24h"``."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


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
