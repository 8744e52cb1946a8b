"""Durations in zot's (Go's) form, as every ``*Interval``/``*Delay`` config key reads them."""

from __future__ import annotations

import pytest

from dockyard.config import parse_duration

VALID = [
    ("90s", 90.0),
    ("10m", 600.0),
    ("24h", 86400.0),
    ("1d", 86400.0),
    ("1h30m", 5400.0),
    ("30m1h", 5400.0),  # Go takes the parts in any order, and adds them
    ("2h45m30s", 9930.0),
    ("1.5h", 5400.0),
    ("500ms", 0.5),
    ("250us", 250e-6),
    ("250µs", 250e-6),
    ("7ns", 7e-9),
    ("0", 0.0),  # the one unit-less value Go accepts
    ("0s", 0.0),
    ("  5m  ", 300.0),  # surrounding blanks from YAML are dropped
]

INVALID = [
    "",
    "   ",
    "10",  # a number without a unit is not seconds: refused, not guessed
    "5x",
    "h",
    "1H",  # units are lower case
    "-5s",  # a negative interval means nothing here
    "1h 30m",  # no blanks inside
    "s10",
    "1.h",
    ".5h",
    "1e3s",
    "10m30",  # a trailing number without its unit
    "1h30m!",
]


@pytest.mark.parametrize(("text", "seconds"), VALID)
def test_valid_durations_are_their_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize("text", INVALID)
def test_malformed_durations_are_refused_with_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("value", [90, 1.5, None, b"90s", ["90s"]])
def test_only_strings_are_durations(value: object) -> None:
    """A bare number in a config file is refused: ``3600`` could be seconds or
    nanoseconds (Go's unit), so dockyard asks for the unit instead of guessing."""
    with pytest.raises(ValueError, match="duration string"):
        parse_duration(value)
