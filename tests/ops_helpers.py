"""Helpers for the operations tests: configs, metrics scrapes, JSON log lines, signals.

Everything is read the way an operator's tools would: metrics over HTTP in Prometheus text
format, logs as JSON lines from the server's output, configs written to disk.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from conftest import Server, free_port
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def write_json_atomically(path: Path, doc: dict[str, Any]) -> Path:
    """Replace ``path`` in one rename, as config-management tools do."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)
    return path


def ops_doc(root: Path, *, log: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """A config document; ``storage``/``http``/``extensions`` keys merge over the defaults."""
    doc: dict[str, Any] = {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root)},
        "http": {"address": "127.0.0.1", "port": 5000},
        "log": {"level": "info", **(log or {})},
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    return doc


def ops_config(path: Path, root: Path, **kwargs: Any) -> Path:
    return write_json_atomically(path, ops_doc(root, **kwargs))


def scrape(client: httpx.Client, path: str = "/metrics") -> Samples:
    resp = client.get(path)
    assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels; 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every log line, each of which must be one JSON object."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"log line is not JSON: {line!r}") from exc
        assert isinstance(doc, dict), line
        lines.append(doc)
    return lines


def access_lines(text: str) -> list[dict[str, Any]]:
    return [d for d in json_lines(text) if d.get("logger") == "dockyard.access"]


def wait_for(check: Any, timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll until ``check()`` is truthy; return its value or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(step)


def signal_server(server: Server, sig: signal.Signals) -> None:
    assert server.proc is not None and server.proc.poll() is None, "server is not running"
    server.proc.send_signal(sig)


def server_on_config(root: Path, config: Path) -> Server:
    """A server whose port and root come from its config file alone (no CLI overrides),
    so a reload sees exactly what the file says. The config must name the free port."""
    doc = json.loads(config.read_text())
    server = Server(root=root, port=int(doc["http"]["port"]), args=[str(config)])
    server.start()
    return server


def with_free_port(doc: dict[str, Any]) -> dict[str, Any]:
    doc["http"] = {**doc["http"], "port": free_port()}
    return doc
