"""``/zot/auth/apikey``: users create, list and revoke their API keys (zot's endpoints).

``POST`` with ``{"label", "scopes", "expirationDate"}`` answers 201 with the key in
``apiKey``, the only time it is ever shown. ``GET`` lists the caller's keys without
them. ``DELETE ?id=<uuid>`` revokes one. Only a caller logged in with a password or a
client certificate reaches these handlers (see the auth middleware): a leaked key cannot
mint more keys or hide itself. ``GET`` and ``DELETE`` take ``?user=<name>`` to act on
another user's keys; the middleware lets only an ``adminPolicy`` user through with it.

A key made by a client-certificate login expires no later than that certificate: a CA
keeps no list of users to check the key's owner against, so the certificate's own end
of life is the bound.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from aiohttp import web

from dockyard.auth.apikey_store import ApiKey, KeyStore
from dockyard.util.globs import compile_glob
from dockyard.web.bodies import read_limited
from dockyard.web.request_keys import identity
from dockyard.web.spec_errors import ApiError

API_KEYS: web.AppKey[KeyStore] = web.AppKey("api_keys")
#: Go's zero time, which zot prints for "never".
_NEVER = "0001-01-01T00:00:00Z"


def _owner(request: web.Request) -> str:
    """Whose keys a GET or DELETE is about: ``?user=`` (vetted by the middleware, which
    lets only admins name someone else), else the caller's own."""
    caller = _user(request)
    return request.query.get("user") or caller


def _certificate_end(request: web.Request) -> float | None:
    """When the client certificate of this connection expires (None: there is none)."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not isinstance(cert, dict) or not isinstance(cert.get("notAfter"), str):
        return None
    return float(ssl.cert_time_to_seconds(cert["notAfter"]))


def _bad(message: str) -> ApiError:
    return ApiError("BAD_REQUEST", message, 400)


def _user(request: web.Request) -> str:
    who = identity(request)
    if who is None or who.user is None:  # the middleware lets no one else through
        raise ApiError("UNAUTHORIZED", "authentication required", 401)
    return who.user


def _parse_expiry(value: object) -> float | None:
    """RFC 3339 (``2025-08-28T17:10:05+03:00``) or zot's RFC 1123Z; None for no expiry."""
    if value in (None, "", _NEVER):
        return None
    if not isinstance(value, str):
        raise _bad("expirationDate must be a date string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise _bad(f"expirationDate {value!r} is not RFC 3339 nor RFC 1123Z") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.timestamp() <= datetime.now(UTC).timestamp():
        raise _bad("expirationDate is in the past")
    return when.timestamp()


def _time(stamp: float | None) -> str:
    if stamp is None:
        return _NEVER
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def _describe(key: ApiKey) -> dict[str, Any]:
    return {
        "uuid": key.id,
        "label": key.label,
        "scopes": list(key.scopes) if key.scopes else None,
        "createdAt": _time(key.created_at),
        "expirationDate": _time(key.expires_at),
        "isExpired": key.expired(),
        "lastUsed": _time(key.last_used),
        "creatorUa": key.creator_ua,
        "generatedBy": "manual",
    }


async def create_key(request: web.Request) -> web.Response:
    user = _user(request)
    raw = await read_limited(request, 64 * 1024)
    if raw is None:
        raise _bad("request body is larger than 64 KiB")
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise _bad("request body is not JSON") from exc
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    label = body.get("label") or ""
    if not isinstance(label, str) or len(label) > 256:
        raise _bad("label must be a string of at most 256 characters")
    scopes = body.get("scopes") or None
    if scopes is not None:
        if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
            raise _bad("scopes must be a list of repository names or globs")
        for scope in scopes:
            try:
                compile_glob(scope)
            except ValueError as exc:
                raise _bad(f"scope {scope!r}: {exc}") from exc
    expires = _parse_expiry(body.get("expirationDate"))
    who = identity(request)
    source = who.method if who is not None else "htpasswd"
    if source == "mtls":
        ends = _certificate_end(request)
        if ends is not None and (expires is None or ends < expires):
            expires = ends
    store = request.app[API_KEYS]
    agent = request.headers.get("User-Agent", "")[:256]
    secret, record = await asyncio.to_thread(
        store.create, user, label, scopes, expires, agent, source
    )
    return web.json_response({**_describe(record), "apiKey": secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    user = _owner(request)
    keys = await asyncio.to_thread(request.app[API_KEYS].list, user)
    return web.json_response({"apiKeys": [_describe(key) for key in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    user = _owner(request)
    key_id = request.query.get("id")
    if not key_id:
        raise _bad("the id query parameter is required")
    if not await asyncio.to_thread(request.app[API_KEYS].revoke, user, key_id):
        raise ApiError("NOT_FOUND", f"no API key {key_id!r} of {user!r}", 404)
    return web.json_response({})
