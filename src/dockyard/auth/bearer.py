"""Docker token authentication: verify JWTs an external token server signed.

A client without a token gets 401 with ``WWW-Authenticate: Bearer realm=...,service=...,
scope="repository:NAME:pull,push"``, asks the token server at ``realm`` for that scope,
and comes back with ``Authorization: Bearer <jwt>``. The token is trusted only when its
signature verifies against ``cert`` (the token server's certificate or public key), its
``aud`` is our ``service``, its ``iss`` is our ``issuer`` (when one is configured), and
it has not expired. Its time claims (``exp``, and ``nbf``/``iat`` when present) must be
JSON numbers: PyJWT would take ``"exp": "1700000000"``, and a token server writing
strings is one whose other claims we cannot trust to mean what we read. Its ``access``
claim then decides everything:
``[{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}]``.

Only asymmetric algorithms matching the key's type are accepted, never ``none`` or an
HMAC one (which would let anyone holding the public key mint tokens). The key file is
re-read when it changes, so the token server's certificate can be renewed in place.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dockyard.auth.access_policy import CREATE, DELETE, READ, UPDATE
from dockyard.util.pem import load_public_key

#: Clock skew tolerated between us and the token server.
LEEWAY_SECONDS = 30

#: The token actions a client asks for when it wants to do one of our actions.
_SCOPE_ACTIONS = {READ: "pull", CREATE: "pull,push", UPDATE: "pull,push", DELETE: "delete"}


class InvalidToken(Exception):
    """A token that is malformed, forged, expired, or meant for another service."""


def scope_for(action: str, repo: str) -> str:
    """The scope string a client should request to do ``action`` on ``repo``."""
    return f"repository:{repo}:{_SCOPE_ACTIONS[action]}"


CATALOG_SCOPE = "registry:catalog:*"


class BearerVerifier:
    """Verifies tokens for one ``service`` against one key file."""

    def __init__(self, realm: str, service: str, cert: Path, issuer: str | None = None) -> None:
        self.realm = realm
        self.service = service
        self.cert = cert
        self.issuer = issuer
        self._stamp: tuple[int, int] | None = None
        self._key: Any = None
        self._algorithms: list[str] = []
        self._refresh()

    def _refresh(self) -> None:
        try:
            st = os.stat(self.cert)
        except OSError:
            return  # keep the key we have
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._key, self._algorithms = load_public_key(self.cert)
            self._stamp = stamp

    def verify(self, token: str) -> tuple[str | None, dict[tuple[str, str], frozenset[str]]]:
        """The token's subject and its grants ``(type, name) -> actions``."""
        import jwt  # only servers with bearer auth load it (see load_public_key)

        with contextlib.suppress(ValueError):  # a half-written key file: keep the old key
            self._refresh()
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self.service,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss"] if self.issuer is not None else ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        _numeric_times(claims)
        subject = claims.get("sub")
        return (subject if isinstance(subject, str) and subject else None), _grants(
            claims.get("access")
        )

    def challenge(self, scopes: Iterable[str] = (), error: str | None = None) -> str:
        """The ``WWW-Authenticate`` value sending a client to the token server."""
        parts = [f'Bearer realm="{self.realm}"', f'service="{self.service}"']
        scope = " ".join(scopes)
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return ",".join(parts)


_TIME_CLAIMS = ("exp", "nbf", "iat")


def _numeric_times(claims: Mapping[str, Any]) -> None:
    """RFC 7519's NumericDate is a JSON number; anything else (a string, a bool) is refused."""
    for name in _TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidToken(f"the {name} claim must be a number")


def _grants(access: object) -> dict[tuple[str, str], frozenset[str]]:
    grants: dict[tuple[str, str], frozenset[str]] = {}
    if not isinstance(access, list):
        return grants
    for entry in access:
        if not isinstance(entry, Mapping):
            continue
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not isinstance(name, str):
            continue
        if not isinstance(actions, list):
            continue
        key = (kind, name)
        grants[key] = grants.get(key, frozenset()) | {a for a in actions if isinstance(a, str)}
    return grants
