"""Helpers for the worker-process tests: a server with several workers, its worker pids,
and requests on fresh connections, each of which the kernel may hand to any worker.

Which worker answered is read from the server's own log: with workers, every JSON line
carries ``"worker": <slot>``, and a request sent with ``X-Request-Id`` is found by it.
"""

from __future__ import annotations

import uuid
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
