"""What a log may say about the user name of a failed login.

People type passwords and API keys into the user-name field, so the name of a failed
login is written as typed only when it names a real user (one the htpasswd file holds).
Anything else is written as a short keyed hash: the same name gives the same 16 hex
digits while the server runs, so repeated tries can still be grouped, but the key is
random per process and never written anywhere, so the digits cannot be turned back into
a password by guessing, as a plain hash of a weak password could.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_KEY = secrets.token_bytes(32)


def name_hash(name: str) -> str:
    """A short keyed hash of ``name``, stable for this process only."""
    return hmac.new(_KEY, name.encode(), hashlib.sha256).hexdigest()[:16]


def loggable_name(name: str | None, real: bool) -> tuple[str | None, str | None]:
    """``(name, None)`` for a ``real`` user's name, ``(None, hash)`` for any other."""
    if not name:
        return None, None
    if real:
        return name, None
    return None, name_hash(name)
