"""Spec error bodies, and the middleware that turns every failure into one.

No request ever gets a traceback: storage errors map to their spec code, the router's
misses become JSON 404/405, and anything unexpected is logged and answered with a 500
whose body says only that.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.oci.digest import InvalidDigest
from dockyard.oci.names import InvalidName
from dockyard.storage import errors as se

log = logging.getLogger("dockyard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Seconds a client is asked to wait when a shared service (object storage, Redis) does
#: not answer (503).
RETRY_AFTER = 5

#: Storage failure -> (spec code, HTTP status).
_CODES: dict[type[se.StorageError], tuple[str, int]] = {
    se.NameUnknown: ("NAME_UNKNOWN", 404),
    se.BlobUnknown: ("BLOB_UNKNOWN", 404),
    se.ManifestUnknown: ("MANIFEST_UNKNOWN", 404),
    se.BlobUploadUnknown: ("BLOB_UPLOAD_UNKNOWN", 404),
    se.BlobUploadInvalid: ("BLOB_UPLOAD_INVALID", 400),
    se.RangeNotSatisfiable: ("BLOB_UPLOAD_INVALID", 416),
    se.DigestInvalid: ("DIGEST_INVALID", 400),
    se.ManifestInvalid: ("MANIFEST_INVALID", 400),
    se.ManifestBlobUnknown: ("MANIFEST_BLOB_UNKNOWN", 400),
    se.StorageFull: ("STORAGE_FULL", 507),
    se.TagMoveDenied: ("DENIED", 403),
    se.IndexUnreadable: ("INDEX_UNREADABLE", 500),
    se.Unavailable: ("UNAVAILABLE", 503),
    se.LockLost: ("UNAVAILABLE", 503),
}


class ApiError(Exception):
    """An error decided in the API layer itself (bad query parameter, wrong method)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        detail: object = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.detail = code, message, status, detail
        self.headers = headers or {}


def error_response(
    code: str,
    message: str,
    status: int,
    detail: object = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    entry: dict[str, Any] = {"code": code, "message": message}
    entry["detail"] = detail if detail is not None else {}
    return web.json_response({"errors": [entry]}, status=status, headers=headers)


def _translate(request: web.Request, exc: BaseException) -> web.StreamResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.code, exc.message, exc.status, exc.detail, exc.headers)
    if isinstance(exc, se.StorageError):
        code, status = _CODES.get(type(exc), ("UNKNOWN", 500))
        headers = None
        if isinstance(exc, se.RangeNotSatisfiable):
            headers = {"Range": f"0-{max(exc.size - 1, 0)}"}
        elif isinstance(exc, se.Unavailable):
            log.warning("503 on %s %s: %s", request.method, request.path, exc.message)
            headers = {"Retry-After": str(RETRY_AFTER)}
        return error_response(code, exc.message, status, exc.detail, headers)
    if isinstance(exc, InvalidName):
        return error_response("NAME_INVALID", str(exc), 400)
    if se.is_unavailable(exc):
        # An outage, not a bug: one line, and a client that retries later succeeds.
        log.warning("object storage unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(
            "UNAVAILABLE",
            "the registry's object storage does not answer; nothing was stored, retry later",
            503,
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    if se.is_disk_full(exc):
        log.error("disk full on %s %s: %s", request.method, request.path, exc)
        return error_response(
            "STORAGE_FULL", "no space left on the registry's disk; nothing was stored", 507
        )
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        # The cause (errno, text, path) says all a traceback would: one line for the log.
        log.error("storage failure on %s %s: %s", request.method, request.path, exc)
        return error_response(
            "UNKNOWN", "the registry's storage failed the request; nothing was stored", 500
        )
    if isinstance(exc, InvalidDigest):
        return error_response("DIGEST_INVALID", str(exc), 400)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return error_response(
            "UNSUPPORTED",
            f"{request.method} is not allowed on {request.path}",
            405,
            headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
        )
    if isinstance(exc, web.HTTPNotFound):
        return error_response("NOT_FOUND", f"no such endpoint {request.path}", 404)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response("SIZE_INVALID", "request body too large", 413)
    if isinstance(exc, web.HTTPException):
        return error_response("UNSUPPORTED", exc.reason, exc.status)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response("UNKNOWN", "internal server error", 500)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ConnectionResetError, web.HTTPSuccessful, web.HTTPRedirection):
        raise
    except Exception as exc:
        return _translate(request, exc)
