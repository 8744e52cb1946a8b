"""Repository globs in zot's dialect (doublestar): ``*`` one level, ``**`` any depth.

``*`` and ``?`` never cross a ``/``. ``**`` as a whole path component matches zero or
more components, so ``a/**`` matches ``a``, ``a/b`` and ``a/b/c``, and ``a/**/c`` matches
``a/c``. ``[abc]``, ``[!a-z]`` and ``{x,y}`` work as in zot. A pattern is compiled once;
matching is one regular-expression call against an already validated repository name.
"""

from __future__ import annotations

import re
from functools import lru_cache


def _segment(seg: str) -> str:
    """Regex for one path component without ``**``."""
    out: list[str] = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "\\" and i + 1 < len(seg):
            out.append(re.escape(seg[i + 1]))
            i += 2
            continue
        if c == "*":
            while i + 1 < len(seg) and seg[i + 1] == "*":
                i += 1  # "a**" inside a component is a plain "*", as in doublestar
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = seg.find("]", i + 2 if seg[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                raise ValueError(f"unclosed '[' in glob {seg!r}")
            body = seg[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            cls = "".join("\\" + ch if ch in "\\]^[" else ch for ch in body)
            out.append(f"[^/{cls}]" if negate else f"(?!/)[{cls}]")
            i = end
        elif c == "{":
            end = seg.find("}", i)
            if end == -1:
                raise ValueError(f"unclosed '{{' in glob {seg!r}")
            alternatives = seg[i + 1 : end].split(",")
            out.append("(?:" + "|".join(_segment(alt) for alt in alternatives) + ")")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def translate(pattern: str) -> str:
    """The regular expression (unanchored text) equivalent to a glob."""
    segs: list[str] = []
    for seg in pattern.split("/"):
        if seg == "**" and segs and segs[-1] == "**":
            continue  # "a/**/**/b" is "a/**/b"
        segs.append(seg)
    out: list[str] = []
    last = len(segs) - 1
    for i, seg in enumerate(segs):
        if seg == "**":
            if last == 0:
                out.append(".*")
            elif i == 0:
                out.append("(?:.*/)?")  # eats the slash before the next component
            elif i == last:
                out.append("(?:/.*)?")  # eats the slash after the previous component
            else:
                out.append("/(?:.*/)?")
            continue
        if i > 0 and segs[i - 1] != "**":
            out.append("/")
        out.append(_segment(seg))
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A compiled, fully anchored matcher for ``pattern``; ValueError when malformed."""
    return re.compile(rf"\A(?:{translate(pattern)})\Z")


def glob_match(pattern: str, name: str) -> bool:
    return compile_glob(pattern).match(name) is not None
