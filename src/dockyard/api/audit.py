"""``log.audit``: one JSON line per mutating request: who did what, and how it ended.

Written for every POST, PUT, PATCH and DELETE, allowed or not, including refused logins
(with the user name tried when it names a real user, else only ``userHash``, a short
keyed hash of it: see :mod:`dockyard.auth.redact`). A line holds the time, client
address, user, how it authenticated, method, path (never the query string), repository,
HTTP status and a one-word result. Never a password, key or token: those live only in
the Authorization header, which is not logged anywhere.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from aiohttp import web

from dockyard.web.request_keys import ATTEMPTED_USER, ATTEMPTED_USER_HASH, identity
from dockyard.web.spec_errors import Handler

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _result(status: int) -> str:
    if status < 400:
        return "ok"
    return {401: "unauthorized", 403: "denied", 429: "limited"}.get(
        status, "failed" if status < 500 else "error"
    )


class AuditLog:
    """Appends lines to one file through its own logger, never the main log."""

    def __init__(self, path: str) -> None:
        self.logger = logging.getLogger("dockyard.audit")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        for old in list(self.logger.handlers):
            self.logger.removeHandler(old)
            old.close()
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.addHandler(handler)

    def close(self) -> None:
        for handler in list(self.logger.handlers):
            self.logger.removeHandler(handler)
            handler.close()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in MUTATING:
            return await handler(request)
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self._write(request, status, time.monotonic() - started)

    def _write(self, request: web.Request, status: int, seconds: float) -> None:
        who = identity(request)
        user = who.user if who is not None else request.get(ATTEMPTED_USER)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "client": request.remote,
            "user": user if user else None,
            "userHash": None if who is not None else request.get(ATTEMPTED_USER_HASH),
            "auth": who.method if who is not None else "none",
            "method": request.method,
            "path": request.path,
            "repository": request.match_info.get("name"),
            "status": status,
            "result": _result(status),
            "seconds": round(seconds, 4),
        }
        self.logger.info(json.dumps(line, separators=(",", ":")))
