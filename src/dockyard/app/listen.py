"""The listening sockets, opened before anything else of the server starts.

Binding first means a busy port or a wrong address stops start-up before a storage root
is created or a background task runs, and the failure is one line naming the address
(``127.0.0.1:5000 is already in use``) rather than asyncio's traceback. The options are
those asyncio's ``create_server`` sets for a host and port: ``SO_REUSEADDR``, and
``IPV6_V6ONLY`` so a name with both an IPv4 and an IPv6 address binds both.
"""

from __future__ import annotations

import contextlib
import errno
import socket

from dockyard.app.preflight import EXIT_START, StartupError


def host_port(address: str, port: int) -> str:
    """``127.0.0.1:5000``, or ``[::1]:5000`` for an IPv6 address."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _why(address: str, port: int, exc: OSError) -> str:
    where = host_port(address, port)
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {address} is not an address of this machine"
    if exc.errno == errno.EACCES:
        hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" if port < 1024 else ""
        return f"cannot listen on {where}: permission denied{hint}"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def open_listeners(address: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``address:port``; else StartupError."""
    try:
        infos = socket.getaddrinfo(
            address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(f"http.address: cannot resolve {address!r}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        close_all(sockets)
        raise StartupError(_why(address, port, exc), EXIT_START) from exc
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
