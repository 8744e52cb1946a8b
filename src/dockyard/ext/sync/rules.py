"""Which upstream content a sync rule covers, and the local name it lands under.

A rule (zot's ``content`` entry) matches upstream repository names with a glob
(``prefix``), filters tags (``regex``, ``excludeRegex``, ``semver``) and may rename
(``destination``, ``stripPrefix``). Mapping works both ways: periodic sync goes upstream
to local, an on-demand miss goes local to upstream. Every name either way is validated
against the spec's grammar before anything uses it as a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.config.sync import SyncContent
from dockyard.oci.names import InvalidName, validate_name
from dockyard.util.globs import glob_match

#: zot's semver filter takes what Masterminds/semver parses: an optional ``v``, one to
#: three numeric parts, optional pre-release and build suffixes.
_SEMVER = re.compile(r"^v?\d+(?:\.\d+){0,2}(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?\Z")
_GLOB_CHARS = set("*?[{")


def is_semver(tag: str) -> bool:
    return _SEMVER.match(tag) is not None


def literal_base(prefix: str) -> str:
    """The leading components of a glob that hold no wildcard (``team/**`` -> ``team``)."""
    parts = []
    for part in prefix.split("/"):
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return "/".join(parts)


def has_glob(prefix: str) -> bool:
    return bool(_GLOB_CHARS & set(prefix))


def _valid(name: str) -> str | None:
    try:
        return validate_name(name)
    except InvalidName:
        return None


@dataclass(frozen=True)
class Rule:
    """One ``content`` entry of one upstream registry."""

    content: SyncContent

    def covers(self, upstream: str) -> bool:
        return glob_match(self.content.prefix, upstream)

    def local_name(self, upstream: str) -> str | None:
        """Where upstream ``upstream`` lands here; None when the rule does not cover it."""
        if not self.covers(upstream):
            return None
        dest = self.content.destination
        if not dest:
            return _valid(upstream)
        rest = upstream
        base = literal_base(self.content.prefix)
        if self.content.strip_prefix and base:
            rest = upstream[len(base) :].lstrip("/") if upstream.startswith(base) else upstream
        return _valid(f"{dest}/{rest}" if rest else dest)

    def upstream_name(self, local: str) -> str | None:
        """The upstream repository a local name mirrors under this rule, or None."""
        dest = self.content.destination
        if not dest:
            candidate: str | None = local
        elif local == dest or local.startswith(dest + "/"):
            rest = local[len(dest) :].lstrip("/")
            base = literal_base(self.content.prefix)
            if self.content.strip_prefix and base:
                candidate = f"{base}/{rest}" if rest else base
            else:
                candidate = rest or None
        else:
            candidate = None
        if candidate is None or _valid(candidate) is None or not self.covers(candidate):
            return None
        # Round trip: the name must map back to the same local name.
        return candidate if self.local_name(candidate) == local else None

    def wants_tag(self, tag: str) -> bool:
        tags = self.content.tags
        if tags is None:
            return True
        if tags.regex is not None and re.search(tags.regex, tag) is None:
            return False
        if tags.exclude_regex is not None and re.search(tags.exclude_regex, tag):
            return False
        return not tags.semver or is_semver(tag)


DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def docker_hub_name(host: str, name: str) -> str:
    """Docker Hub keeps official images under ``library/``: ``alpine`` is ``library/alpine``."""
    hub = host in DOCKER_HUB_HOSTS
    return f"library/{name}" if hub and "/" not in name else name


def upstream_name_at(rule: Rule, host: str, local: str) -> str | None:
    """The name the local name ``local`` has on the upstream ``host`` under ``rule``.

    On Docker Hub a one-component name is an official image, ``library/NAME``: that is
    the name the rule's prefix must cover (``library/**`` covers a pull of ``alpine``),
    and the name asked for. Elsewhere names are taken as they are.
    """
    name = rule.upstream_name(local)
    if name is None and host in DOCKER_HUB_HOSTS and "/" not in local:
        name = rule.upstream_name(f"library/{local}")
    return docker_hub_name(host, name) if name is not None else None
