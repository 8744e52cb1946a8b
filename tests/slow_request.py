"""A request whose body arrives in two parts, over a raw socket, for race tests.

``Expect: 100-continue`` gives the test a point to synchronise on: the server answers
``100 Continue`` once it has routed the request, and then runs its middlewares (the
access check among them) up to the handler's first read of the body, with nothing to
wait for when the caller's credentials are already verified (cached). So once the
``100 Continue`` is in, the server has decided on the request's headers, and whatever
the test does next happens between that decision and the end of the body.
"""

from __future__ import annotations

import base64
import socket

import httpx

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class SlowRequest:
    """Headers and the first ``head`` bytes of the body now, the rest on :meth:`finish`."""

    def __init__(
        self,
        base_url: str,
        method: str,
        path: str,
        body: bytes,
        auth: tuple[str, str],
        content_type: str,
        head: int = 10,
    ) -> None:
        url = httpx.URL(base_url)
        assert url.host and url.port
        self.method, self.url, self.body, self.head = method, str(url.join(path)), body, head
        self.sock = socket.create_connection((url.host, url.port), timeout=30)
        basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request = (
            f"{method} {path} HTTP/1.1\r\n"
            f"Host: {url.host}:{url.port}\r\n"
            f"Authorization: Basic {basic}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n"
            "Connection: close\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        got = b""
        while len(got) < len(_CONTINUE):
            chunk = self.sock.recv(len(_CONTINUE) - len(got))
            assert chunk, f"connection closed before 100 Continue: {got!r}"
            got += chunk
        assert got == _CONTINUE, f"expected 100 Continue, got {got!r}"
        self.sock.sendall(body[:head])

    def finish(self) -> httpx.Response:
        """Send the rest of the body and read the whole answer."""
        try:
            self.sock.sendall(self.body[self.head :])
            raw = b""
            while chunk := self.sock.recv(65536):
                raw += chunk
        finally:
            self.sock.close()
        head, _, content = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = [tuple(line.split(": ", 1)) for line in lines]
        return httpx.Response(
            int(status_line.split()[1]),
            headers=headers,
            content=content,
            request=httpx.Request(self.method, self.url),
        )
