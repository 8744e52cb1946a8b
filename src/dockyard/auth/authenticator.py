"""Turns a request's credentials into an :class:`Identity`, or refuses them.

In order, as zot does: an ``Authorization`` header is an explicit attempt and must
succeed (Basic: htpasswd, then API keys; Bearer: a token server's JWT); without one, a
client certificate verified by the TLS layer names the user; otherwise the request is
anonymous. ``Basic`` with an empty user and password counts as no credentials, because
that is what containers/image (skopeo, podman) sends when it has none.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from dockyard.auth.access_policy import AccessPolicy
from dockyard.auth.apikey_store import PREFIX, ApiKey, KeyStore
from dockyard.auth.bearer import BearerVerifier, InvalidToken
from dockyard.auth.failures import Admit
from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.auth.mtls import AmbiguousCertificate, common_name


class AuthFailed(Exception):
    """Credentials were presented and are not good. ``user`` is the name tried, if any."""

    def __init__(self, reason: str, user: str | None = None, token: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.user, self.token = reason, user, token


def parse_basic(value: str) -> tuple[str, str]:
    """``(user, password)`` from the part of a Basic header after the scheme."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthFailed("malformed basic credentials") from exc
    user, sep, password = decoded.partition(":")
    if not sep:
        raise AuthFailed("malformed basic credentials")
    return user, password


class Authenticator:
    """The configured ways to log in; :meth:`identify` tries them on one request."""

    def __init__(
        self,
        policy: AccessPolicy,
        htpasswd: Htpasswd | None = None,
        keys: KeyStore | None = None,
        bearer: BearerVerifier | None = None,
        mtls: bool = False,
    ) -> None:
        self.policy = policy
        self.htpasswd, self.keys, self.bearer, self.mtls = htpasswd, keys, bearer, mtls

    @property
    def can_log_in(self) -> bool:
        """Whether any way to authenticate is configured (else everyone is anonymous)."""
        return bool(self.htpasswd or self.bearer or self.mtls)

    async def identify(
        self, authorization: list[str], peercert: Any = None, admit: Admit | None = None
    ) -> Identity:
        """Who sent these credentials. ``admit`` is asked before a password check would
        start; when it says no, :class:`~dockyard.auth.failures.Throttled` is raised
        (see :meth:`Htpasswd.verify`)."""
        if len(authorization) > 1:
            raise AuthFailed("several Authorization headers")
        if authorization:
            scheme, _, value = authorization[0].strip().partition(" ")
            scheme = scheme.lower()
            if scheme == "basic":
                user, password = parse_basic(value)
                if user or password:
                    return await self._basic(user, password, admit)
            elif scheme == "bearer" and self.bearer is not None:
                return self._token(value.strip())
            else:
                # Not naming the scheme: a bare secret with no scheme would land in the log.
                raise AuthFailed("unsupported authorization scheme")
        if self.mtls:
            try:
                name = common_name(peercert)
            except AmbiguousCertificate as exc:
                raise AuthFailed(str(exc)) from exc
            if name is not None:
                return Identity(name, "mtls", self.policy.groups_of(name))
        return ANONYMOUS

    async def _basic(self, user: str, password: str, admit: Admit | None = None) -> Identity:
        if self.bearer is not None:
            raise AuthFailed("this registry takes tokens from its token server", user)
        # An API key first: a hash lookup, where trying it as a password would pay for
        # a bcrypt check on every request made with a key.
        if self.keys is not None and password.startswith(PREFIX):
            record = await self.keys.verify(user, password)
            if record is not None and self.still_issued(record):
                return Identity(user, "apikey", self.policy.groups_of(user), record.scopes)
        if self.htpasswd is not None and await self.htpasswd.verify(user, password, admit):
            return Identity(user, "htpasswd", self.policy.groups_of(user))
        raise AuthFailed("invalid user name or password", user)

    def is_user(self, name: str) -> bool:
        """Whether ``name`` is a user the htpasswd file holds (what a log may name)."""
        return self.htpasswd is not None and self.htpasswd.has_user(name)

    def still_issued(self, key: ApiKey) -> bool:
        """Whether the identity source that issued ``key`` still vouches for its user.

        htpasswd: the file (re-read when it changed) still names the user, so deleting a
        user disables their keys at once. mTLS: client certificates are still accepted;
        a CA names no list of users to check, so such a key instead expires when the
        certificate it was made with does (see the key endpoints).
        """
        if key.source == "mtls":
            return self.mtls
        return self.htpasswd is not None and self.htpasswd.has_user(key.user)

    def _token(self, token: str) -> Identity:
        assert self.bearer is not None
        try:
            subject, grants = self.bearer.verify(token)
        except InvalidToken as exc:
            raise AuthFailed(f"invalid token: {exc}", token=True) from exc
        return Identity(subject or "", "bearer", frozenset(), None, grants)
