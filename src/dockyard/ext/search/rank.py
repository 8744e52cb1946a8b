"""How well a repository name matches a search text, with zot's ranking rules.

Lower is better, -1 is no match: an exact name is 0; a match in the last path component
ranks by where it starts (1, 2 ...); in the first component, ten times that; a path
prefix 10; anywhere else a hundred times the position.
"""

from __future__ import annotations

_HIGH, _MEDIUM, _LOW = 1, 10, 100


def rank_repo_name(text: str, name: str) -> int:
    text = text.strip().strip("/")
    if not text:
        return _HIGH  # everything matches, equally (zot: found at position 0)
    wanted = text.split("/")
    # Every rule below needs the last searched component inside the name: reject fast.
    if wanted[-1] not in name:
        return -1
    parts = name.split("/")
    if len(wanted) > len(parts):
        return -1
    if text == name:
        return 0
    if len(wanted) == 1:
        at = parts[-1].find(text)
        if at >= 0:
            return (at + 1) * _HIGH
        at = parts[0].find(text)
        if at >= 0:
            return (at + 1) * _MEDIUM
    if wanted[:-1] == parts[: len(wanted) - 1]:
        at = parts[-1].find(wanted[-1])
        if at >= 0:
            return (at + 1) * _HIGH
    if name.startswith(text):
        return _MEDIUM
    at = name.find(text)
    return (at + 1) * _LOW if at >= 0 else -1
