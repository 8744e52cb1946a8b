"""``http.ratelimit``: per client address, overall and per method; 429 with Retry-After."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving, write_config
from conftest import Server
from spec_helpers import assert_error


def _from(address: str, base_url: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (any 127.x is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


def test_limits_per_address_and_per_method(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.json",
        {"ratelimit": {"rate": 3, "methods": [{"method": "POST", "rate": 1}]}},
    )
    # 127.0.0.1 spent some allowance on the readiness check: use fresh addresses.
    with serving(tmp_path / "data", config) as server:
        one, two = _from("127.0.0.2", server.url), _from("127.0.0.3", server.url)
        with one, two:
            codes = [one.get("/v2/").status_code for _ in range(3)]
            assert codes == [200, 200, 200]
            limited = one.get("/v2/")
            assert_error(limited, 429, "TOOMANYREQUESTS")
            assert limited.headers["Retry-After"] == "1"
            # Another address has its own allowance.
            assert two.get("/v2/").status_code == 200
            time.sleep(1.1)
            assert one.get("/v2/").status_code == 200
            # POST has a tighter limit of its own: one a second.
            assert two.post("/v2/a/blobs/uploads/").status_code == 202
            assert_error(two.post("/v2/a/blobs/uploads/"), 429, "TOOMANYREQUESTS")
            assert two.get("/v2/").status_code == 200


def test_zot_spelling_of_the_section(tmp_path: Path) -> None:
    """zot's example writes ``Ratelimit``/``Rate``/``Methods``; that works too."""
    config = write_config(
        tmp_path / "config.json",
        {"Ratelimit": {"Rate": 100, "Methods": [{"Method": "get", "Rate": 2}]}},
    )
    with serving(tmp_path / "data", config) as server, _from("127.0.0.2", server.url) as c:
        assert [c.get("/v2/").status_code for _ in range(3)] == [200, 200, 429]
        assert c.head("/v2/").status_code == 200  # HEAD is not GET


def test_the_table_is_bounded_least_recently_seen_first(tmp_path: Path) -> None:
    """``maxClients``: past the cap, the address seen longest ago is forgotten, and comes
    back with a full bucket. (A table without a cap would still hold it: 429.)"""
    config = write_config(tmp_path / "config.json", {"ratelimit": {"rate": 0.2, "maxClients": 2}})
    with serving(tmp_path / "data", config) as server:
        two, three, four = (_from(f"127.0.0.{n}", server.url) for n in (2, 3, 4))
        with two, three, four:
            assert two.get("/v2/").status_code == 200
            assert_error(two.get("/v2/"), 429, "TOOMANYREQUESTS")  # 5 s until the next
            assert three.get("/v2/").status_code == 200
            assert_error(three.get("/v2/"), 429, "TOOMANYREQUESTS")  # 3 is remembered
            assert four.get("/v2/").status_code == 200  # the third address: 2 goes
            assert two.get("/v2/").status_code == 200  # forgotten, so a fresh bucket
            assert_error(four.get("/v2/"), 429, "TOOMANYREQUESTS")


class _V6Server(Server):
    """A server listening on ::1 only (the conftest one assumes 127.0.0.1)."""

    @property
    def url(self) -> str:
        return f"http://[::1]:{self.port}"


def _v6_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return int(sock.getsockname()[1])


def _v6_available() -> bool:
    try:
        _v6_port()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _v6_available(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_client_is_limited(tmp_path: Path) -> None:
    """Over IPv6 the key is the client's /64: ::1's requests share one bucket."""
    config = write_config(tmp_path / "config.json", {"ratelimit": {"rate": 0.2}})
    port = _v6_port()
    args = [str(config), "--address", "::1", "--port", str(port), "--root", str(tmp_path / "d")]
    server = _V6Server(root=tmp_path / "d", port=port, args=args)
    server.start()  # its readiness check spends ::1's one request
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            assert_error(c.get("/v2/"), 429, "TOOMANYREQUESTS")
        # The IPv4 loopback is not served at all: the listener is IPv6 only.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=5)
    finally:
        server.stop()


def test_client_keys_group_ipv6_by_slash_64() -> None:
    """Unit level: one IPv6 /64 is one client (a host gets a whole /64 to pick from);
    IPv4 addresses are their own, and an IPv4-mapped IPv6 address is its IPv4 one."""
    from dockyard.api.ratelimit import client_key

    same = {client_key(a) for a in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff")}
    assert same == {"2001:db8:1:2::/64"}
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::1") == "::/64"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("10.0.0.1") == "10.0.0.1" != client_key("10.0.0.2")
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("") == "" and client_key("unix-socket") == "unix-socket"


def test_buckets_stay_under_the_cap() -> None:
    """Unit level: 200,000 addresses (the audit's flood) leave at most ``maxClients``
    buckets, within one refill period, when nothing would have been pruned yet."""
    from dockyard.api.ratelimit import Buckets

    buckets = Buckets(rate=0.001, max_clients=1000)
    for n in range(200_000):
        assert buckets.take(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", 1.0 + n * 1e-6) == 0
    assert buckets.clients == 1000
    # The most recent ones are the ones kept: the last address is still limited.
    assert buckets.take("10.3.13.63", 2.0) > 0
    assert buckets.take("10.0.0.0", 2.0) == 0  # forgotten long ago: a full bucket
