"""Helpers the security tests share: htpasswd files, configs, authenticated clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
from conftest import Server, start_server


def write_htpasswd(path: Path, users: dict[str, str], cost: int = 4) -> Path:
    """An htpasswd file of bcrypt entries (``$2y$`` as ``htpasswd -B`` writes them)."""
    lines = []
    for user, password in users.items():
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
        lines.append(f"{user}:$2y${hashed[4:]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(
    path: Path, http: dict[str, Any], log: dict[str, Any] | None = None, **top: Any
) -> Path:
    """A JSON config with this ``http`` section (address and port come from the CLI)."""
    config: dict[str, Any] = {"distSpecVersion": "1.1.1", "http": http, **top}
    if log is not None:
        config["log"] = log
    path.write_text(json.dumps(config, indent=2))
    return path


@contextmanager
def serving(root: Path, config: Path, **kwargs: Any) -> Iterator[Server]:
    server = start_server(root, config=config, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def client_for(
    server: Server, user: str | None = None, password: str | None = None, **kwargs: Any
) -> httpx.Client:
    """An httpx client for ``server``, sending Basic credentials when ``user`` is given."""
    auth = (user, password or "") if user is not None else None
    verify = kwargs.pop("verify", server.tls or True)
    return httpx.Client(base_url=server.url, auth=auth, timeout=30, verify=verify, **kwargs)
