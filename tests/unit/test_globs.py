"""Repository globs of ``http.accessControl`` in zot's doublestar dialect, matched and judged."""

from __future__ import annotations

import pytest

from dockyard.util.globs import compile_glob, glob_match, never_matches

MATCHES = [
    # pattern, name, matches
    ("a/*", "a/b", True),
    ("a/*", "a/b/c", False),  # * never crosses a slash
    ("a/*", "a", False),
    ("a*", "abc", True),
    ("a*", "a/b", False),
    ("a**", "abc", True),  # ** inside a component is a plain *
    ("a**", "a/b", False),
    ("a/**", "a", True),  # ** is zero or more components
    ("a/**", "a/b/c", True),
    ("a/**", "ab", False),
    ("a/**", "ab/c", False),
    ("**", "x", True),
    ("**", "x/y/z", True),
    ("**/c", "c", True),
    ("**/c", "a/b/c", True),
    ("**/c", "a/bc", False),
    ("a/**/c", "a/c", True),
    ("a/**/c", "a/x/y/c", True),
    ("a/**/c", "a/xc", False),
    ("a/**/c", "a/c/d", False),
    ("a/**/**/c", "a/c", True),  # repeated ** collapse
    ("a?c", "abc", True),
    ("a?c", "a/c", False),  # ? never matches a slash
    ("a?c", "ac", False),
    ("[ab]x", "ax", True),
    ("[ab]x", "cx", False),
    ("[!ab]x", "cx", True),
    ("[!ab]x", "ax", False),
    ("[^ab]x", "bx", False),
    ("a[!b]c", "a/c", False),  # a negated class still never matches a slash
    ("a[!b]c", "abc", False),
    ("[a-c]1", "b1", True),
    ("[a-c]1", "d1", False),
    ("{red,blue}/box", "blue/box", True),
    ("{red,blue}/box", "green/box", False),
    ("x/{a*,b}", "x/abc", True),
    ("x/{a*,b}", "x/a/c", False),
    ("a.b", "a.b", True),
    ("a.b", "axb", False),  # regex characters are literal
    ("a\\*", "a*", True),  # an escaped * is a star
    ("a\\*", "ab", False),
    ("library/alpine", "library/alpine", True),
    ("library/alpine", "library/alpine/x", False),  # anchored at both ends
    ("library/alpine", "x/library/alpine", False),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCHES)
def test_glob_matches(pattern: str, name: str, expected: bool) -> None:
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[abc", "a/[!x", "{a,b", "x/{a,b/c"])
def test_malformed_globs_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="unclosed"):
        compile_glob(pattern)


DEAD = [
    # pattern, a word of the reason
    ("Library/alpine", "upper case"),
    ("/a", "starts with a slash"),
    ("a/", "ends with a slash"),
    ("a//b", "empty path component"),
    ("a b", "' '"),
    ("a:b", "':'"),
    ("-a", "not a valid"),
    ("a..b", "not a valid"),
    ("a___b", "not a valid"),
    ("a*-", "not a valid"),  # whatever * matches, the component ends in a dash
    ("{Foo,Bar}", "upper case"),  # dead only when every alternative is
]

ALIVE = [
    "a/*",
    "**",
    "a/**/c",
    "a__b",
    "a-----b",
    "*-a",
    "{Foo,bar}",
    "[A-Z]x",  # classes are assumed to match something
    "x/y.z_w",
]


@pytest.mark.parametrize(("pattern", "why"), DEAD)
def test_globs_no_valid_name_can_match_are_named(pattern: str, why: str) -> None:
    reason = never_matches(pattern)
    assert reason is not None and why in reason


@pytest.mark.parametrize("pattern", ALIVE)
def test_globs_a_valid_name_may_match_are_not_flagged(pattern: str) -> None:
    assert never_matches(pattern) is None


def test_too_many_alternatives_are_not_judged() -> None:
    """Past 256 expansions a glob is left alone (never wrongly called dead)."""
    pattern = "/".join(["{A,B,C,D}"] * 5)  # 1024 upper-case alternatives, all dead
    assert never_matches(pattern) is None
    assert never_matches("/".join(["{A,B,C,D}"] * 4)) is not None  # 256: judged
