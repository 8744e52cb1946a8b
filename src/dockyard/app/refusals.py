"""Requests aiohttp's HTTP parser refuses, answered as spec errors and logged in one line.

A request line or header block over the limits below, a TLS handshake on the plain-HTTP
port (skopeo and podman try HTTPS first), or bytes that are not HTTP never reach the
application: aiohttp's parser refuses them and its ``RequestHandler.handle_error``
answers a plain-text 400 that repeats the first 100 bytes of the offending line, and
logs it with a traceback at error level. That line may be an ``Authorization`` header.

aiohttp has no supported hook for these answers (aio-libs/aiohttp#3287 is open), so a
small subclass of its connection handler overrides ``handle_error`` for parser errors
only; a server and runner subclass make aiohttp use it. pyproject.toml pins aiohttp to
the minor version this was tested with, since ``_make_server`` and the server's
``_kwargs`` are aiohttp internals.

What the client sent is never repeated, in the answer or the log: the answer names the
limit that was hit, and the access line (logger ``dockyard.access``) says why the request
was refused, with no method or path when the parser did not get that far. A client that
hangs up in the middle of its request body gets the same one info line, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.web_protocol import RequestHandler

from dockyard.app.logs import REFUSED_KEY, REQUEST_ID_HEADER, request_id
from dockyard.web.spec_errors import error_response

#: Longest request target (path and query) in bytes: 414 beyond it.
MAX_REQUEST_TARGET = 8192
#: Longest header field, name and value together, in bytes: 431 beyond it. It must differ
#: from MAX_REQUEST_TARGET: the limit aiohttp reports is how a refusal is attributed.
MAX_HEADER_FIELD = 8190
#: Most header fields in one request: 431 beyond it.
MAX_HEADERS = 128

#: The spec's code for a request the registry will not process.
CODE = "UNSUPPORTED"


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the status, and a message built only from our own words."""

    status: int
    message: str
    limit: int | None = None


def refusal_of(exc: HttpProcessingError) -> Refusal:
    """The answer to a parser error. Never uses ``exc.message``: it quotes the request."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == MAX_REQUEST_TARGET:
            return Refusal(414, f"request target longer than {limit} bytes", limit)
        return Refusal(431, f"header field longer than {MAX_HEADER_FIELD} bytes", MAX_HEADER_FIELD)
    if isinstance(exc, BadHttpMessage) and exc.message.startswith(
        ("Too many headers", "Too many trailers")
    ):
        return Refusal(431, f"more than {MAX_HEADERS} header fields", MAX_HEADERS)
    if isinstance(exc, BadHttpMethod) and exc.message.startswith("Received HTTPS traffic"):
        return Refusal(400, "TLS handshake on the plain-HTTP port: use http://, not https://")
    if isinstance(exc, BadHttpMethod):
        return Refusal(400, "malformed request line: invalid method")
    if isinstance(exc, BadStatusLine):
        return Refusal(400, "malformed request line")
    if isinstance(exc, InvalidURLError):
        return Refusal(400, "malformed request target")
    if isinstance(exc, InvalidHeader):
        return Refusal(400, "malformed header field")
    if isinstance(exc, PayloadEncodingError):
        return Refusal(400, "malformed message body framing")
    return Refusal(400, "malformed HTTP request")


#: A client that hangs up in its request body (Ctrl-C on a push) is no server error either.
HUNG_UP = Refusal(400, "the client closed the connection in the middle of its request")


class RefusingRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering parser errors as the spec's JSON errors."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            refusal = refusal_of(exc)
        elif isinstance(exc, ConnectionResetError) and request.writer.output_size == 0:
            refusal = HUNG_UP  # the handler waited for body bytes that will never come
        else:  # a real server error: aiohttp's 500, logged with its traceback
            return super().handle_error(request, status, exc, message)
        request[REFUSED_KEY] = refusal.message  # the access line says why, in one line
        detail = {} if refusal.limit is None else {"limit": refusal.limit}
        response = error_response(
            CODE,
            refusal.message,
            refusal.status,
            detail,
            headers={REQUEST_ID_HEADER: request_id(request)},
        )
        response.force_close()  # the parser cannot find the next request after this one
        return response


class RefusingServer(web.Server):
    """aiohttp's server, whose connections use ``RefusingRequestHandler``."""

    def __call__(self) -> RequestHandler:
        return RefusingRequestHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` with the parser limits above and the refusing handler."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_REQUEST_TARGET)
        kwargs.setdefault("max_field_size", MAX_HEADER_FIELD)
        kwargs.setdefault("max_headers", MAX_HEADERS)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the app, as aiohttp's runner does
        return RefusingServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **made._kwargs,
        )
