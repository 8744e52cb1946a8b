"""Checks across ``http.auth``, ``http.accessControl`` and ``http.tls``.

Each names the key to change, so a config that could never let anyone in (or would let
everyone in by mistake) stops at load time instead of surprising its users later.
"""

from __future__ import annotations

from dockyard.config.access import AccessControl
from dockyard.config.auth import Auth
from dockyard.config.tls import Tls


def check_security(auth: Auth | None, access: AccessControl | None, tls: Tls | None) -> None:
    """Raise ValueError when these sections cannot work together."""
    login = auth is not None and (auth.htpasswd is not None or auth.bearer is not None)
    mtls = tls is not None and tls.cacert is not None
    if auth is not None and auth.apikey and not (auth.htpasswd or mtls):
        raise ValueError(
            "auth.apikey: API keys are created by a user logged in with a password or a "
            "client certificate; configure auth.htpasswd or tls.cacert too"
        )
    if auth is not None and auth.apikey and auth.bearer is not None:
        raise ValueError("auth.apikey: API keys are basic-auth passwords, unused with bearer")
    if access is not None and not (login or mtls) and not access.only_anonymous():
        raise ValueError(
            "accessControl: policies for users need a way to log in: configure "
            "auth.htpasswd, auth.bearer or tls.cacert, or use only anonymousPolicy"
        )
