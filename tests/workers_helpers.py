"""Helpers for the worker-process tests: a server with several workers, its worker pids,
and requests on fresh connections, each of which the kernel may hand to any worker.

Which worker answered is read from the server's own log: with workers, every JSON line
carries ``"worker": <slot>``, and a request sent with ``X-Request-Id`` is found by it. To
send a request *to* a given worker, :func:`connection_to` opens connections until that
worker accepts one (read from /proc: the process holding the server's end).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from conftest import Server, start_server
from ops_helpers import json_lines, wait_for


def start_workers(root: Path, workers: int = 2, *extra: str, config: Path | None = None) -> Server:
    """A server with ``workers`` worker processes, returned once every one serves."""
    server = start_server(root, "--workers", str(workers), *extra, config=config)
    wait_for(lambda: len(worker_pids(server)) == workers, 20, f"{workers} worker processes")
    wait_for(
        lambda: len(serving_lines(server)) >= workers, 20, f"{workers} workers to log 'serving'"
    )
    return server


def serving_lines(server: Server) -> list[dict[str, Any]]:
    return [d for d in log_docs(server) if str(d.get("message", "")).startswith("dockyard serving")]


def log_docs(server: Server) -> list[dict[str, Any]]:
    """The server's JSON log lines (stray non-JSON lines, such as a traceback, skipped)."""
    docs = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            docs.extend(json_lines(line))
    return docs


def worker_pids(server: Server) -> list[int]:
    """The supervisor's children: the worker processes."""
    assert server.proc is not None
    pid = server.proc.pid
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def fresh(server: Server, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, str]:
    """One request on a new connection; the response and the request id it was sent with."""
    rid = uuid.uuid4().hex
    headers = {"X-Request-Id": rid, **kwargs.pop("headers", {})}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        return c.request(method, path, headers=headers, **kwargs), rid


def workers_of(server: Server, request_ids: list[str], timeout: float = 10) -> set[int]:
    """The worker slots whose access lines carry these request ids (waits for the lines)."""
    wanted = set(request_ids)

    def found() -> dict[str, int] | None:
        seen = {
            d["request_id"]: int(d["worker"])
            for d in log_docs(server)
            if d.get("logger") == "dockyard.access" and d.get("request_id") in wanted
        }
        return seen if len(seen) == len(wanted) else None

    seen: dict[str, int] = wait_for(found, timeout, "the access lines of these requests")
    return set(seen.values())


@dataclass
class Answer:
    """A response read over a raw ``http.client`` connection."""

    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def _server_side_inode(server: Server, client_port: int) -> str | None:
    """The socket inode of the server's end of the connection from ``client_port``."""
    want_local, want_remote = f":{server.port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(want_local) and parts[2].endswith(want_remote):
            return parts[9]
    return None


def owner_of(server: Server, conn: http.client.HTTPConnection) -> int:
    """The pid of the worker that accepted ``conn`` (from /proc: which process holds the
    server's end of it); waits until one has accepted it."""
    assert conn.sock is not None
    port = conn.sock.getsockname()[1]

    def find() -> int | None:
        inode = _server_side_inode(server, port)
        if inode is None or inode == "0":
            return None
        target = f"socket:[{inode}]"
        for pid in worker_pids(server):
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                            return pid
        return None

    pid: int = wait_for(find, 10, "a worker to accept the connection", step=0.01)
    return pid


def connection_to(server: Server, pid: int, tries: int = 200) -> http.client.HTTPConnection:
    """A new connection that worker ``pid`` accepted (others are opened and closed until
    one lands there: which worker accepts is the kernel's choice)."""
    for _ in range(tries):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.connect()
        if owner_of(server, conn) == pid:
            return conn
        conn.close()
    raise AssertionError(f"worker {pid} accepted none of {tries} connections")


def send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    content = resp.read()
    return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, content)


def on_each_worker(
    server: Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> list[Answer]:
    """The same request once through each worker, each on a new connection."""
    answers = []
    for pid in worker_pids(server):
        conn = connection_to(server, pid)
        try:
            answers.append(send(conn, method, path, body, headers))
        finally:
            conn.close()
    return answers
