"""``http.ratelimit``: per client address, overall and per method; 429 with Retry-After."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from auth_helpers import serving, write_config
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
