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


#: One path component of a repository name, from the distribution spec's grammar.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_SEPARATORS = frozenset("._-")
#: Brace alternatives expanded at most; past that a glob is not judged (never wrongly).
_MAX_EXPANSIONS = 256


def _expand(pattern: str) -> list[str] | None:
    """Every brace-free pattern ``{x,y}`` stands for; None when there are too many."""
    out = [pattern]
    while any("{" in p for p in out):
        nxt: list[str] = []
        for p in out:
            start = p.find("{")
            end = p.find("}", start)
            if start == -1 or end == -1:
                nxt.append(p)
                continue
            nxt += [p[:start] + alt + p[end + 1 :] for alt in p[start + 1 : end].split(",")]
        if len(nxt) > _MAX_EXPANSIONS:
            return None
        if nxt == out:
            break
        out = nxt
    return out


def _component_tokens(seg: str) -> list[tuple[bool, str]]:
    """``(literal, text)`` tokens of one component: escapes and plain characters are
    literal; ``*``, ``?`` and ``[...]`` classes are not (whatever they could match)."""
    tokens: list[tuple[bool, str]] = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "\\" and i + 1 < len(seg):
            tokens.append((True, seg[i + 1]))
            i += 2
            continue
        if c == "[":
            end = seg.find("]", i + 2 if seg[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end != -1:
                tokens.append((False, seg[i : end + 1]))
                i = end + 1
                continue
        tokens.append((c not in "*?", c))
        i += 1
    return tokens


def _dead(pattern: str) -> str | None:
    """Why a brace-free glob matches no valid repository name, or None if it might."""
    if pattern.startswith("/"):
        return "it starts with a slash"
    if pattern.endswith("/"):
        return "it ends with a slash"
    if "//" in pattern:
        return "it has an empty path component (//)"
    for seg in pattern.split("/"):
        if seg == "**":
            continue
        tokens = _component_tokens(seg)
        literal = [text for is_literal, text in tokens if is_literal]
        if any(ch.isupper() for ch in literal):
            return "it has upper case letters, and repository names are lower case"
        bad = next((ch for ch in literal if ch not in _NAME_CHARS), None)
        if bad is not None:
            return f"it holds {bad!r}, which no repository name holds"
        wild = not all(is_literal for is_literal, _ in tokens)
        edges = [tokens[0], tokens[-1]] if tokens else []
        at_edge = any(is_literal and text in _SEPARATORS for is_literal, text in edges)
        if (not wild and not _COMPONENT.fullmatch("".join(literal))) or at_edge:
            return f"its component {seg!r} is not a valid repository name component"
    return None


def never_matches(pattern: str) -> str | None:
    """Why ``pattern`` can match no repository name the spec allows, or None.

    Checked against the name grammar: lower case letters and digits, separated by ``.``,
    ``_``, ``__`` or dashes, components joined by single slashes. A glob with
    alternatives is dead only when every alternative is. Character classes and
    wildcards are assumed to match something, so a None is no promise that one will.
    """
    expanded = _expand(pattern)
    if expanded is None:
        return None
    reasons = [_dead(p) for p in expanded]
    if any(reason is None for reason in reasons):
        return None
    return reasons[0]
