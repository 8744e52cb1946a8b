"""Docker token authentication (``http.auth.bearer``) against a token server of our own.

The token server (``token_server.py``, its own process) signs ES256 JWTs granting the
scopes its policy allows; dockyard verifies them against the server's certificate and
enforces their ``access`` claims. skopeo, a real client, follows the challenge to the
token server with ``--creds`` and pushes and pulls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
from clients_helpers import Skopeo, assert_same_image
from conftest import Server, free_port
from images import build_image
from spec_helpers import assert_error, get_manifest, image_manifest, push_manifest
from token_server import ISSUER, claims_for, sign


@dataclass
class Setup:
    registry: Server
    realm: str
    key: bytes
    cert: Path

    def token(self, user: str, *scopes: str) -> str:
        """A token from the token server, as a client would get it."""
        auth = (user, USERS[user]) if user else None
        params = [("service", SERVICE)] + [("scope", s) for s in scopes]
        r = httpx.get(self.realm, params=params, auth=auth, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.registry.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("bearer")
    key_path, cert_path = signing_key(tmp, "token-signer")
    policy = tmp / "policy.json"
    policy.write_text(json.dumps(TOKEN_POLICY))
    port = free_port()
    token_server = subprocess.Popen(
        [
            sys.executable,
            str(TOKEN_SERVER),
            "--port",
            str(port),
            "--key",
            str(key_path),
            "--config",
            str(policy),
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
        config = write_config(
            tmp / "config.json",
            {"auth": {"bearer": {"realm": realm, "service": SERVICE, "cert": str(cert_path)}}},
        )
        with serving(tmp / "data", config) as registry:
            yield Setup(registry, realm, key_path.read_bytes(), cert_path)
    finally:
        token_server.terminate()
        token_server.wait(10)


def _challenge(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 401, r.text
    scheme, _, params = r.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer"
    out = {}
    for part in params.split('",'):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip().strip('"')
    return out


def test_challenges_name_the_realm_service_and_scope(setup: Setup) -> None:
    with setup.client() as anon:
        base = _challenge(anon.get("/v2/"))
        assert base == {"realm": setup.realm, "service": SERVICE}
        pull = _challenge(anon.get("/v2/alice/app/manifests/v1"))
        assert pull["scope"] == "repository:alice/app:pull"
        push = _challenge(anon.post("/v2/alice/app/blobs/uploads/"))
        assert push["scope"] == "repository:alice/app:pull,push"
        delete = _challenge(anon.delete("/v2/alice/app/manifests/v1"))
        assert delete["scope"] == "repository:alice/app:delete"
        mount = _challenge(
            anon.post("/v2/alice/app/blobs/uploads/", params={"mount": "x", "from": "shared/b"})
        )
        assert mount["scope"] == "repository:alice/app:pull,push repository:shared/b:pull"
        assert _challenge(anon.get("/v2/_catalog"))["scope"] == "registry:catalog:*"
        # Basic credentials are not how this registry is entered.
        r = anon.get("/v2/", auth=("alice", "alice-pw"))
        assert _challenge(r)["realm"] == setup.realm


def test_token_scopes_are_enforced(setup: Setup) -> None:
    full = setup.token("alice", "repository:alice/app:pull,push,delete")
    with setup.client(full) as alice:
        assert alice.get("/v2/").status_code == 200
        pushed = push_manifest(alice, "alice/app", image_manifest(alice, "alice/app"), "v1")
        assert get_manifest(alice, "alice/app", "v1").status_code == 200
    pull_only = setup.token("alice", "repository:alice/app:pull")
    with setup.client(pull_only) as alice:
        assert get_manifest(alice, "alice/app", pushed.digest).status_code == 200
        r = alice.post("/v2/alice/app/blobs/uploads/")
        challenge = _challenge(r)
        assert challenge["error"] == "insufficient_scope"
        assert challenge["scope"] == "repository:alice/app:pull,push"
        assert_error(r, 401, "UNAUTHORIZED")
        # A token for one repository opens no other.
        assert _challenge(alice.get("/v2/alice/other/tags/list"))["error"] == "insufficient_scope"
    # bob asks for alice's repo: the token server grants nothing, so nothing opens.
    nothing = setup.token("bob", "repository:alice/app:pull")
    with setup.client(nothing) as bob:
        assert _challenge(get_manifest(bob, "alice/app", "v1"))["error"] == "insufficient_scope"
    # Anonymous tokens carry what the token server gives anonymous users.
    anon_token = setup.token("", "repository:shared/x:pull,push")
    with setup.client(anon_token) as anon:
        assert anon.get("/v2/shared/x/tags/list").status_code in (404,)  # allowed; absent
        assert _challenge(anon.post("/v2/shared/x/blobs/uploads/"))["error"] == "insufficient_scope"


def test_catalog_needs_the_catalog_scope(setup: Setup) -> None:
    with setup.client(setup.token("alice", "repository:alice/listed:pull,push")) as alice:
        push_manifest(alice, "alice/listed", image_manifest(alice, "alice/listed"), "v1")
    with setup.client(setup.token("alice", "registry:catalog:*")) as alice:
        assert "alice/listed" in alice.get("/v2/_catalog").json()["repositories"]
    with setup.client(setup.token("bob", "registry:catalog:*")) as bob:
        assert _challenge(bob.get("/v2/_catalog"))["error"] == "insufficient_scope"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(header: dict[str, str], claims: dict[str, object], secret: bytes | None) -> str:
    """A JWT built by hand: HMAC-signed with ``secret``, or with no signature at all."""
    body = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = b"" if secret is None else hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def test_bad_tokens_are_refused(setup: Setup, tmp_path: Path) -> None:
    access = [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]
    other_key, _ = signing_key(tmp_path, "impostor")
    now = int(time.time())
    good = claims_for(SERVICE, "alice", access)
    forged = [
        sign(other_key.read_bytes(), good),  # signed by someone else
        sign(setup.key, {**good, "exp": now - 120, "iat": now - 420}),  # expired
        sign(setup.key, {**good, "aud": "another-registry"}),  # for another service
        sign(setup.key, {k: v for k, v in good.items() if k != "exp"}),  # never expires
        # Key confusion: HS256 "signed" with the public certificate anyone can read.
        _unsigned({"alg": "HS256", "typ": "JWT"}, good, setup.cert.read_bytes()),
        _unsigned({"alg": "none", "typ": "JWT"}, good, None),
        "not-a-jwt",
    ]
    for token in forged:
        with setup.client(token) as c:
            r = get_manifest(c, "alice/app", "v1")
            assert _challenge(r).get("error") == "invalid_token", token
    with setup.client(sign(setup.key, good)) as c:
        r = get_manifest(c, "alice/app", "v1")  # let through: 200, or 404 if not pushed yet
        assert r.status_code in (200, 404) and "WWW-Authenticate" not in r.headers
    # No token, good or bad, ever reaches the server's log.
    output = setup.registry.output()
    for token in [*forged, sign(setup.key, good)]:
        signature = token.split(".")[-1]
        assert token not in output and (not signature or signature not in output)


def test_skopeo_pushes_and_pulls_through_the_token_server(setup: Setup, tmp_path: Path) -> None:
    skopeo = Skopeo(tmp_path / "skopeo")
    image = build_image(tmp_path / "src", "v1", layers=2)
    host = setup.registry.host
    skopeo.run(
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-pw",
        f"oci:{image.layout}:v1",
        f"docker://{host}/alice/skopeo:v1",
    )
    out = tmp_path / "out"
    skopeo.run(
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        "alice:alice-pw",
        f"docker://{host}/alice/skopeo:v1",
        f"oci:{out}:v1",
    )
    assert_same_image(out, "v1", image)
    # bob's token has no push there: skopeo fails.
    denied = skopeo.run(
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:bob-pw",
        f"oci:{image.layout}:v1",
        f"docker://{host}/alice/skopeo:v2",
        check=False,
    )
    assert denied.returncode != 0


def test_time_claims_must_be_numbers(setup: Setup) -> None:
    """``exp``, ``nbf`` and ``iat`` written as strings are refused, even when they would
    pass as numbers: a token server that writes them so is not one we understand."""
    access = [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]
    good = claims_for(SERVICE, "alice", access)
    for claim in ("exp", "nbf", "iat"):
        token = sign(setup.key, {**good, claim: str(good[claim])})
        with setup.client(token) as c:
            r = get_manifest(c, "alice/app", "v1")
            assert _challenge(r).get("error") == "invalid_token", claim
    for claim, value in (("exp", True), ("exp", [good["exp"]]), ("nbf", None)):
        token = sign(setup.key, {**good, claim: value})
        with setup.client(token) as c:
            assert _challenge(get_manifest(c, "alice/app", "v1")).get("error") == "invalid_token"
    # Fractional seconds are numbers, and fine.
    with setup.client(sign(setup.key, {**good, "exp": good["exp"] + 0.5})) as c:
        assert "WWW-Authenticate" not in get_manifest(c, "alice/app", "v1").headers


def test_the_issuer_is_checked_when_configured(setup: Setup, tmp_path: Path) -> None:
    """``bearer.issuer`` (zot's and distribution's key): a token from another issuer, or
    naming none, is refused; without the key, ``iss`` is not looked at (as before)."""
    config = write_config(
        tmp_path / "config.json",
        {
            "auth": {
                "bearer": {
                    "realm": setup.realm,
                    "service": SERVICE,
                    "cert": str(setup.cert),
                    "issuer": ISSUER,
                }
            }
        },
    )
    access = [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]
    good = claims_for(SERVICE, "alice", access)
    no_issuer = {k: v for k, v in good.items() if k != "iss"}
    with serving(tmp_path / "data", config) as registry:

        def answer(claims: dict[str, object]) -> httpx.Response:
            headers = {"Authorization": f"Bearer {sign(setup.key, claims)}"}
            with httpx.Client(base_url=registry.url, headers=headers, timeout=30) as c:
                return get_manifest(c, "alice/app", "v1")

        assert answer(good).status_code == 404  # let through; nothing pushed there
        for claims in ({**good, "iss": "someone-else"}, no_issuer, {**good, "iss": ISSUER + " "}):
            assert _challenge(answer(claims)).get("error") == "invalid_token", claims
    # The module's registry has no issuer configured: any iss, or none, passes.
    for claims in ({**good, "iss": "someone-else"}, no_issuer):
        with setup.client(sign(setup.key, claims)) as c:
            assert "WWW-Authenticate" not in get_manifest(c, "alice/app", "v1").headers
