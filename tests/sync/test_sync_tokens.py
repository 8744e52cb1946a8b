"""Bearer tokens from an upstream's token server are reused until they near expiry.

The upstream is a second dockyard that takes tokens from the test token server, which
records every request it answers. Over on-demand pulls (manifests, blobs, tag re-checks)
and periodic passes, the mirror must ask once per scope while its token is fresh, also
when several requests for one scope start at the same moment, and ask again only when
the token is within 5 s of its ``expires_in``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from auth_helpers import serving, write_config
from bearer_helpers import SERVICE, TOKEN_POLICY, USERS
from conftest import Server
from spec_helpers import MANIFEST_ACCEPT, Pushed, push_image
from sync_helpers import TokenServer, quiet_log, sync_config, token_server


@dataclass
class Upstream:
    server: Server
    tokens: TokenServer

    def push(self, repo: str, tag: str) -> Pushed:
        token = httpx.get(
            self.tokens.realm,
            params={"service": SERVICE, "scope": f"repository:{repo}:pull,push"},
            auth=("alice", USERS["alice"]),
            timeout=10,
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=30) as c:
            return push_image(c, repo, tag)

    def mirror_requests(self) -> list[dict[str, Any]]:
        """The token requests the mirror made (alice asking for no push), in order."""
        return [
            r
            for r in self.tokens.requests()
            if r["user"] == "alice" and not any("push" in s for s in r["scopes"])
        ]

    def by_scope(self) -> Counter[str]:
        return Counter(" ".join(r["scopes"]) for r in self.mirror_requests())


@contextmanager
def bearer_upstream(folder: Path, expires_in: int) -> Iterator[Upstream]:
    with token_server(folder / "tokens", {**TOKEN_POLICY, "expires_in": expires_in}) as tokens:
        bearer = {"realm": tokens.realm, "service": SERVICE, "cert": str(tokens.cert)}
        config = write_config(folder / "up.json", {"auth": {"bearer": bearer}})
        with serving(folder / "up-data", config) as server:
            yield Upstream(server, tokens)


def _mirror(tmp_path: Path, upstream: Upstream, **entry: object) -> Path:
    creds = tmp_path / "sync-auth.json"
    creds.write_text(
        f'{{"{upstream.server.host}": {{"username": "alice", "password": "{USERS["alice"]}"}}}}'
    )
    registry = {
        "urls": [upstream.server.url],
        "onDemand": True,
        "content": [{"prefix": "alice/**"}],
        **entry,
    }
    return sync_config(tmp_path / "config.json", [registry], creds)


def _pull(c: httpx.Client, repo: str, tag: str, pushed: Pushed | None = None) -> None:
    got = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    assert got.status_code == 200, got.text
    for digest in pushed.blobs if pushed is not None else ():
        assert c.get(f"/v2/{repo}/blobs/{digest}").status_code == 200


def _passes(server: Server) -> int:
    return server.output().count("sync: pass over")


def _wait_for_passes(server: Server, count: int) -> None:
    deadline = time.monotonic() + 60
    while _passes(server) < count:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)


def test_one_token_per_scope_over_pulls_and_passes(tmp_path: Path) -> None:
    """Periodic passes every second and on-demand pulls (blobs, and a tag re-checked on
    every read) share one token per scope: the catalog's, and each repository's."""
    with bearer_upstream(tmp_path / "up", expires_in=300) as upstream:
        upstream.push("alice/a", "v1")
        config = _mirror(tmp_path, upstream, pollInterval="1s", tagTTL="0s")
        with serving(tmp_path / "data", config) as server:
            _wait_for_passes(server, 2)
            b = upstream.push("alice/b", "v1")
            a2 = upstream.push("alice/a", "v2")
            with httpx.Client(base_url=server.url, timeout=30) as c:
                for _ in range(3):
                    _pull(c, "alice/b", "v1", b)
                    _pull(c, "alice/a", "v2", a2)
                    _pull(c, "alice/a", "v1")
            _wait_for_passes(server, _passes(server) + 2)
            server.stop()
            assert quiet_log(server.output()) == []
        assert upstream.by_scope() == {
            "registry:catalog:*": 1,
            "repository:alice/a:pull": 1,
            "repository:alice/b:pull": 1,
        }


def test_concurrent_first_requests_share_one_token(tmp_path: Path) -> None:
    """Six clients ask at once for six tags of a repository the mirror has no token for:
    the upstream answers each with a 401, and the mirror asks the token server once."""
    with bearer_upstream(tmp_path / "up", expires_in=300) as upstream:
        tags = [f"t{i}" for i in range(6)]
        for tag in tags:
            upstream.push("alice/c", tag)
        with serving(tmp_path / "data", _mirror(tmp_path, upstream)) as server:

            def pull(tag: str) -> int:
                with httpx.Client(base_url=server.url, timeout=30) as c:
                    return c.get(
                        f"/v2/alice/c/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
                    ).status_code

            with ThreadPoolExecutor(len(tags)) as pool:
                assert list(pool.map(pull, tags)) == [200] * len(tags)
            server.stop()
            assert quiet_log(server.output()) == []
        assert upstream.by_scope() == {"repository:alice/c:pull": 1}


def test_a_token_near_its_expiry_is_replaced(tmp_path: Path) -> None:
    """Tokens that last 10 s: pulls in the first 5 s reuse the first token; a pull after
    that gets a fresh one, asked for before the old one expired (never a stale token)."""
    with bearer_upstream(tmp_path / "up", expires_in=10) as upstream:
        pushed = {tag: upstream.push("alice/d", tag) for tag in ("v1", "v2", "v3")}
        with serving(tmp_path / "data", _mirror(tmp_path, upstream)) as server:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                _pull(c, "alice/d", "v1", pushed["v1"])
                _pull(c, "alice/d", "v2", pushed["v2"])
                first = upstream.mirror_requests()
                assert len(first) == 1, first
                # Waiting for the token to age is what this test is about.
                time.sleep(max(0.0, first[0]["time"] + 5.5 - time.time()))
                _pull(c, "alice/d", "v3", pushed["v3"])
            server.stop()
            assert quiet_log(server.output()) == []
        asked = upstream.mirror_requests()
        assert len(asked) == 2, asked
        assert 5.0 <= asked[1]["time"] - asked[0]["time"] < 10.0
