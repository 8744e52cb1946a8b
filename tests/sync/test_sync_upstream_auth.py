"""Upstream authentication for mirroring: TLS with zot's ``certDir`` (or ``tlsVerify:
false``) and the Docker bearer-token dance, against a second dockyard that serves HTTPS
from a test CA and takes tokens from the test token server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving, write_config
from bearer_helpers import SERVICE, TOKEN_POLICY, TOKEN_SERVER, USERS, signing_key
from certs import ServerPki, server_pki
from conftest import Server, free_port
from spec_helpers import MANIFEST_ACCEPT, Pushed, push_image
from sync_helpers import sync_config


@dataclass
class BearerUpstream:
    server: Server
    realm: str
    pki: ServerPki

    def client(self, user: str, scope: str) -> httpx.Client:
        token = httpx.get(
            self.realm,
            params={"service": SERVICE, "scope": scope},
            auth=(user, USERS[user]),
            timeout=10,
        ).json()["token"]
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {token}"},
            verify=self.pki.ca.client_context(),
            timeout=30,
        )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BearerUpstream]:
    tmp = tmp_path_factory.mktemp("bearer-upstream")
    key_path, cert_path = signing_key(tmp, "token-signer")
    policy = tmp / "policy.json"
    policy.write_text(json.dumps(TOKEN_POLICY))
    port = free_port()
    token_server = subprocess.Popen(
        [
            sys.executable,
            str(TOKEN_SERVER),
            *("--port", str(port), "--key", str(key_path), "--config", str(policy)),
        ]
    )
    realm = f"http://127.0.0.1:{port}/token"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(realm, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "token server did not start"
                time.sleep(0.05)
        pki = server_pki(tmp / "pki")
        config = write_config(
            tmp / "config.json",
            {
                "auth": {"bearer": {"realm": realm, "service": SERVICE, "cert": str(cert_path)}},
                "tls": {"cert": str(pki.cert), "key": str(pki.key)},
            },
        )
        with serving(tmp / "data", config, tls=pki.ca.client_context()) as server:
            yield BearerUpstream(server, realm, pki)
    finally:
        token_server.terminate()
        token_server.wait(10)


def _push(upstream: BearerUpstream, user: str, repo: str) -> Pushed:
    with upstream.client(user, f"repository:{repo}:pull,push") as c:
        return push_image(c, repo, "v1")


def _mirror_config(
    tmp_path: Path, upstream: BearerUpstream, user: str | None, **entry: object
) -> Path:
    creds = None
    if user is not None:
        creds = tmp_path / "sync-auth.json"
        creds.write_text(
            json.dumps({upstream.server.host: {"username": user, "password": USERS[user]}})
        )
    registry = {"urls": [upstream.server.url], "onDemand": True, **entry}
    return sync_config(tmp_path / "config.json", [registry], creds)


def _pull(server: Server, repo: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        return c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})


def test_bearer_with_credentials_over_tls_with_cert_dir(
    tmp_path: Path, upstream: BearerUpstream
) -> None:
    """certDir's ca.crt makes the upstream's certificate trusted; the 401 Bearer challenge
    is answered with a token fetched with the credentialsFile's user; blobs follow."""
    pushed = _push(upstream, "alice", "alice/app")
    cert_dir = upstream.pki.ca.client_dir(tmp_path / "certs")
    config = _mirror_config(tmp_path, upstream, "alice", certDir=str(cert_dir))
    with serving(tmp_path / "data", config) as server:
        got = _pull(server, "alice/app")
        assert got.status_code == 200 and got.content == pushed.body
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for digest in pushed.blobs:
                blob = c.get(f"/v2/alice/app/blobs/{digest}")
                assert blob.status_code == 200
                assert blob.headers["Docker-Content-Digest"] == digest


def test_anonymous_token_and_tls_verify_false(tmp_path: Path, upstream: BearerUpstream) -> None:
    """Without credentials the mirror asks the token server anonymously (enough for
    shared/*); ``tlsVerify: false`` accepts the test CA's certificate unchecked."""
    pushed = _push(upstream, "bob", "shared/app")
    config = _mirror_config(tmp_path, upstream, None, tlsVerify=False)
    with serving(tmp_path / "data", config) as server:
        got = _pull(server, "shared/app")
        assert got.status_code == 200 and got.content == pushed.body
        # Anonymous has no pull on alice/*: the upstream refuses, the client gets a 404.
        _push(upstream, "alice", "alice/other")
        assert _pull(server, "alice/other").status_code == 404


def test_untrusted_certificate_is_refused(tmp_path: Path, upstream: BearerUpstream) -> None:
    """With tlsVerify on and no certDir, the test CA is not trusted: nothing is fetched."""
    _push(upstream, "bob", "shared/untrusted")
    config = _mirror_config(tmp_path, upstream, "bob")
    with serving(tmp_path / "data", config) as server:
        assert _pull(server, "shared/untrusted").status_code == 404
        assert "unreachable" in server.output() or "certificate" in server.output()
