"""Repository names and tags: the spec's grammar, plus what a safe path needs."""

from __future__ import annotations

import re

# distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")

#: Longest repository name accepted (distribution's limit; keeps paths well under PATH_MAX).
MAX_NAME_LENGTH = 255

#: Components that would land on a file or folder of an OCI layout of a parent repository.
RESERVED_COMPONENTS = frozenset({"blobs", "index.json", "oci-layout"})


class InvalidName(ValueError):
    """Not a repository name this registry will map to a directory."""


class InvalidTag(ValueError):
    """Not a tag under the spec's grammar."""


def validate_name(name: str) -> str:
    """Return ``name`` when it is a valid, path-safe repository name, else raise."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"repository name longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.match(name):
        raise InvalidName(f"invalid repository name {name!r}")
    reserved = RESERVED_COMPONENTS.intersection(name.split("/"))
    if reserved:
        raise InvalidName(f"repository name uses the reserved component {min(reserved)!r}")
    return name


def is_tag(reference: str) -> bool:
    return bool(_TAG.match(reference))


def validate_tag(tag: str) -> str:
    if not is_tag(tag):
        raise InvalidTag(f"invalid tag {tag!r}")
    return tag
