"""Requests aiohttp's HTTP parser refuses: JSON errors, one quiet log line, no secrets.

A request line or header block over the limits, a TLS handshake sent to the plain-HTTP
port (skopeo and podman probe HTTPS first), or any other malformed request is the
client's fault, not the server's. The client gets the spec's JSON error body with the
status that says why (414, 431, 400); the log gets one info line without a traceback;
neither the response nor the log repeats what the client sent, since a header may hold a
password or token.

The requests go over a raw socket: HTTP clients refuse to send most of them.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clients_helpers import Skopeo, assert_same_image
from conftest import Server, start_server
from images import build_image
from ops_helpers import json_lines


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, so its whole log belongs to the test."""
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


class Answer:
    """A raw HTTP response: status, headers (lower-cased names), body and all bytes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }

    def error(self) -> dict[str, Any]:
        """The one entry of the spec's error body, checked to have exactly its keys."""
        assert self.headers["content-type"].startswith("application/json"), self.raw[:300]
        doc = json.loads(self.body)
        assert list(doc) == ["errors"] and len(doc["errors"]) == 1, doc
        entry: dict[str, Any] = doc["errors"][0]
        assert set(entry) == {"code", "message", "detail"}, entry
        return entry


def exchange(server: Server, data: bytes) -> Answer:
    """Send ``data`` on a new connection and read until the server closes it (it must)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return Answer(b"".join(chunks))


def request(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def client_hello() -> bytes:
    """The first bytes a TLS client sends: a real ClientHello from Python's ssl module."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:2] == b"\x16\x03", hello[:8]  # a TLS handshake record
    return hello


def stopped_log(server: Server) -> tuple[str, list[dict[str, Any]]]:
    """The server's whole log once it has stopped (so every buffered line is written)."""
    server.stop()
    text = server.output()
    return text, json_lines(text)


def assert_quiet(text: str, lines: list[dict[str, Any]]) -> None:
    """No traceback, no warning or error, nothing from aiohttp's own loggers."""
    assert "Traceback" not in text, text[-3000:]
    loud = [d for d in lines if d["level"] not in ("info", "debug")]
    assert loud == [], loud
    assert [d for d in lines if d["logger"].startswith("aiohttp")] == []


def refusals(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The access lines of refused requests."""
    return [d for d in lines if d["logger"] == "dockyard.access" and d.get("refused")]


def test_request_target_over_the_limit_gets_414_json(server: Server) -> None:
    near = exchange(server, request("/v2/" + "a" * 8000))  # under the limit: routed
    assert near.status == 404 and near.error()["code"] == "NOT_FOUND"

    long = exchange(server, request("/v2/" + "a" * 9000 + "/tags/list"))
    assert long.status == 414
    entry = long.error()
    assert entry["code"] == "UNSUPPORTED"
    assert entry["detail"] == {"limit": 8192}
    assert b"aaaaaaaaaa" not in long.raw
    assert long.headers.get("x-request-id")
    # Refused and closed, the server goes on serving.
    assert exchange(server, request("/v2/")).status == 200

    text, lines = stopped_log(server)
    assert_quiet(text, lines)
    [line] = refusals(lines)
    assert line["status"] == 414 and line["request_id"] == long.headers["x-request-id"]
    assert line["method"] is None and line["path"] is None
    assert "aaaaaaaaaa" not in json.dumps(line)


def test_header_over_the_limits_gets_431_json(server: Server) -> None:
    value = exchange(server, request("/v2/", "X-Big: " + "v" * 9000))
    name = exchange(server, request("/v2/", "X-" + "n" * 9000 + ": 1"))
    many = exchange(server, request("/v2/", *(f"X-H{i}: 1" for i in range(200))))
    for answer, limit in ((value, 8190), (name, 8190), (many, 128)):
        assert answer.status == 431, answer.raw[:300]
        entry = answer.error()
        assert entry["code"] == "UNSUPPORTED"
        assert entry["detail"] == {"limit": limit}
    assert b"vvvvvvvvvv" not in value.raw and b"nnnnnnnnnn" not in name.raw
    # Just under the limits still works.
    fits = exchange(server, request("/v2/", "X-Big: " + "v" * 8000))
    assert fits.status == 200

    text, lines = stopped_log(server)
    assert_quiet(text, lines)
    assert sorted(d["status"] for d in refusals(lines)) == [431, 431, 431]


def test_long_authorization_header_is_neither_echoed_nor_logged(tmp_path: Path) -> None:
    """A secret in an oversized header reaches neither the response nor the log."""
    server = start_server(tmp_path / "data")
    secret = secrets.token_urlsafe(7000)  # ~9300 characters, over the 8190 limit
    try:
        answer = exchange(server, request("/v2/", f"Authorization: Basic {secret}"))
    finally:
        text, lines = stopped_log(server)
    assert answer.status == 431
    assert answer.error()["code"] == "UNSUPPORTED"
    pieces = [secret[i : i + 16] for i in range(0, len(secret) - 16, 16)]
    response = answer.raw.decode("latin-1")
    assert not [p for p in pieces if p in response], "the response repeats the header"
    assert not [p for p in pieces if p in text], "the log repeats the header"
    assert_quiet(text, lines)
    assert len(refusals(lines)) == 1


def test_tls_client_hello_on_the_plain_port_is_one_info_line(server: Server) -> None:
    answer = exchange(server, client_hello())
    assert answer.status == 400
    entry = answer.error()
    assert entry["code"] == "UNSUPPORTED"
    assert "TLS" in entry["message"]
    assert exchange(server, request("/v2/")).status == 200

    text, lines = stopped_log(server)
    assert_quiet(text, lines)
    [line] = refusals(lines)
    assert line["status"] == 400 and "TLS" in line["message"]


def test_garbage_request_line_gets_400_json(server: Server) -> None:
    answer = exchange(server, b"\x00\x01secret-garbage\r\n\r\n")
    assert answer.status == 400
    assert answer.error()["code"] == "UNSUPPORTED"
    assert b"secret-garbage" not in answer.raw
    text, lines = stopped_log(server)
    assert_quiet(text, lines)
    assert "secret-garbage" not in text


def test_skopeo_copy_in_and_out_logs_no_error(server: Server, tmp_path: Path) -> None:
    """skopeo probes HTTPS on the plain port first; that is no error and no traceback."""
    skopeo = Skopeo(tmp_path / "skopeo-home")
    image = build_image(tmp_path / "src", "v1")
    skopeo.push(image.layout, "v1", f"{server.host}/quiet/app:v1")
    out = tmp_path / "out"
    skopeo.pull(f"{server.host}/quiet/app:v1", out, "v1")
    assert_same_image(out, "v1", image)

    text, lines = stopped_log(server)
    assert_quiet(text, lines)
    assert [d for d in lines if d["level"] == "error"] == []
    # The probe happened, and it was logged as one quiet refusal line.
    assert any("TLS" in d["message"] for d in refusals(lines)), "skopeo sent no TLS probe"


def test_client_hanging_up_mid_body_is_one_info_line(server: Server) -> None:
    """A client that drops its connection in the middle of a body is not a server error."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /v2/quiet/cut/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
            b'Content-Length: 1000\r\n\r\n{"schemaVersion":'
        )
        # The handler is reading the body when the client goes.
        assert exchange(server, request("/v2/")).status == 200
    assert exchange(server, request("/v2/")).status == 200  # the server noticed, and serves

    text, lines = stopped_log(server)
    assert_quiet(text, lines)
    [line] = refusals(lines)
    assert line["method"] == "PUT" and line["path"] == "/v2/quiet/cut/manifests/v1"
    assert "closed the connection" in line["refused"]
