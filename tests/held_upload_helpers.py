"""Monolithic uploads a test holds mid-body, and what a server process has written.

:class:`HeldPut` sends ``PUT <location>?digest=`` over a raw socket in two parts: its
headers and the first ``head`` bytes of the body at once, the rest when the test says
(:meth:`HeldPut.release`: at once, or trickled like a slow link), or never
(:meth:`HeldPut.cut`: the connection closes mid-body). The bytes go from a thread of
their own, so a server that does not read a body (an upload waiting for another) never
blocks the test.

:func:`bytes_written` sums ``wchar`` over the server's processes (``/proc/<pid>/io``:
every byte handed to ``write`` and its kin): the observable of "this upload's bytes were
hashed, not stored", which no timing or sampling of a session file could give.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import httpx
from conftest import Server
from spec_helpers import location_url, with_params
from storage_helpers import process_tree


class HeldPut:
    """A monolithic PUT whose body is sent in two parts, the second on :meth:`release`."""

    def __init__(
        self, sock: socket.socket, location: str, digest: str, body: bytes, head: int
    ) -> None:
        self.sock, self.body, self.head = sock, body, head
        self._go = threading.Event()
        self._cut = False
        self._piece, self._every = 0, 0.0
        self._error: BaseException | None = None
        path = with_params(location, {"digest": digest})
        url = httpx.URL(path)
        target = url.raw_path.decode()
        request = (
            f"PUT {target} HTTP/1.1\r\n"
            f"Host: {sock.getpeername()[0]}:{sock.getpeername()[1]}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        self._sender = threading.Thread(target=self._send, daemon=True)
        self._sender.start()

    def _send(self) -> None:
        try:
            self.sock.sendall(self.body[: self.head])
            if self.head >= len(self.body):
                return  # sent whole: nothing to hold
            self._go.wait(60)
            rest = memoryview(self.body)[self.head :]
            step = self._piece or len(rest)
            for at in range(0, len(rest), step):
                if self._cut:
                    return
                if at and self._every:
                    time.sleep(self._every)
                self.sock.sendall(rest[at : at + step])
        except OSError as exc:
            self._error = exc

    @property
    def sending(self) -> bool:
        """Whether the body is still being sent (held, or trickling)."""
        return self._sender.is_alive()

    def release(self, piece: int = 0, every: float = 0.0) -> None:
        """Send the rest of the body: at once, or ``piece`` bytes each ``every`` seconds."""
        self._piece, self._every = piece, every
        self._go.set()

    def cut(self) -> None:
        """Close the connection mid-body (the client went away)."""
        self._cut = True
        self._go.set()
        self._sender.join(30)
        # A reset, not an orderly close: the server sees the body broken off.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def answer(self) -> tuple[int, bytes]:
        """The status and body of the response (read until the server closes)."""
        self._sender.join(60)
        assert not self._sender.is_alive(), "the body was never all sent"
        assert self._error is None, f"sending the body failed: {self._error!r}"
        self.sock.settimeout(60)
        got = b""
        while chunk := self.sock.recv(65536):
            got += chunk
        self.sock.close()
        head, _, content = got.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        return status, content


def open_session(server: Server, repo: str) -> str:
    """POST a new upload session; its Location."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        resp = c.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status_code == 202, resp.text
    return location_url(resp)


def session_file(root: Path, repo: str, location: str) -> Path:
    """``ROOT/<repo>/.uploads/<id>`` of the session at ``location``."""
    return root / repo / ".uploads" / location.rstrip("/").split("?")[0].rsplit("/", 1)[1]


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def bytes_written(server: Server) -> int:
    """Bytes the server's processes (workers included) have handed to ``write``."""
    assert server.proc is not None
    total = 0
    for pid in process_tree(server.proc.pid):
        try:
            text = Path(f"/proc/{pid}/io").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("wchar:"):
                total += int(line.split()[1])
    return total
