"""zot's ``credentialsFile``: upstream host -> ``{"username", "password"}``."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

Credentials = tuple[str, str]


class CredentialsError(ValueError):
    """The credentials file cannot be read; the message names the file."""


def load_credentials(path: str | None) -> dict[str, Credentials]:
    """The file's entries by key as written (``host:port`` or a URL); {} without a file."""
    if not path:
        return {}
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read sync credentialsFile {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CredentialsError(f"sync credentialsFile {path} must map hosts to credentials")
    found: dict[str, Credentials] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            raise CredentialsError(f"sync credentialsFile {path}: {key!r} is not an object")
        user, password = entry.get("username"), entry.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise CredentialsError(
                f"sync credentialsFile {path}: {key!r} needs string username and password"
            )
        found[key] = (user, password)
    return found


def credentials_for(url: str, table: dict[str, Credentials]) -> Credentials | None:
    """The entry for an upstream URL: by the URL itself, else by its ``host[:port]``."""
    host = urlsplit(url).netloc
    return table.get(url) or table.get(url.rstrip("/")) or table.get(host)
