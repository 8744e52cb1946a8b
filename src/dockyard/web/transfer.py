"""The body bytes a request moved, counted the same way by the access line and the metrics."""

from __future__ import annotations

from aiohttp import web


def bytes_sent(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """Body bytes sent. Content-Length when known: sendfile bypasses aiohttp's counter."""
    if request.method == "HEAD":
        return 0
    length = response.content_length
    return length if length is not None else response.body_length


def bytes_received(request: web.BaseRequest) -> int:
    """Body bytes that arrived (counted as they stream, so chunked uploads count too)."""
    return int(request.content.total_bytes)
