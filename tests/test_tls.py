"""HTTPS (``http.tls``), client certificates (mTLS) and certificate renewal in place.

Certificates come from a test CA made with ``cryptography``. Clients trust it explicitly
(httpx through an SSLContext, skopeo and podman through ``--cert-dir``), so nothing on
the machine changes. skopeo (``--creds``) and podman (``login``) run real round trips.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
from auth_helpers import client_for, serving, write_config, write_htpasswd
from certs import Authority, server_pki
from cryptography import x509
from images import build_image
from spec_helpers import assert_error, image_manifest, push_manifest
from test_clients_podman import Podman
from test_clients_skopeo import Skopeo, assert_same_image

USERS = {"alice": "alice-pw"}
ACCESS = {
    "repositories": {
        "alice/**": {"policies": [{"users": ["alice"], "actions": ["read", "create", "update"]}]},
        "carol/**": {"policies": [{"users": ["carol"], "actions": ["read", "create"]}]},
        "alice/public": {
            "policies": [{"users": ["alice"], "actions": ["read", "create"]}],
            "anonymousPolicy": ["read"],
        },
    }
}


def _served_serial(port: int, ca: Authority) -> int:
    """The serial number of the certificate the server presents to a new connection."""
    ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_skopeo_and_podman_over_https_with_credentials(tmp_path: Path) -> None:
    pki = server_pki(tmp_path / "pki")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {
            "tls": {"cert": str(pki.cert), "key": str(pki.key)},
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": ACCESS,
        },
    )
    certs = pki.ca.client_dir(tmp_path / "certs.d")
    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        assert server.url.startswith("https://")
        # Plain HTTP to the TLS port gets nowhere.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{server.host}/v2/", timeout=5).raise_for_status()
        # An unknown CA is refused by the client: the server really presents our cert.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/v2/", timeout=5)

        skopeo = Skopeo(tmp_path / "skopeo")
        image = build_image(tmp_path / "src", "v1", layers=2)
        dest = f"docker://{server.host}/alice/app:v1"
        skopeo.run(
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-cert-dir",
            str(certs),
            "--dest-creds",
            "alice:alice-pw",
            f"oci:{image.layout}:v1",
            dest,
        )
        failed = skopeo.run(
            "copy",
            "--quiet",
            "--dest-cert-dir",
            str(certs),
            "--dest-creds",
            "alice:wrong",
            f"oci:{image.layout}:v1",
            f"docker://{server.host}/alice/app:v2",
            check=False,
        )
        assert failed.returncode != 0
        assert b"unauthorized" in failed.stderr.lower(), failed.stderr
        out = tmp_path / "out"
        skopeo.run(
            "copy",
            "--quiet",
            "--preserve-digests",
            "--src-cert-dir",
            str(certs),
            "--src-creds",
            "alice:alice-pw",
            dest,
            f"oci:{out}:v1",
        )
        assert_same_image(out, "v1", image)
        # Anonymous pulls of a repository with an anonymousPolicy work with no --creds:
        # skopeo answers the Basic challenge with empty credentials, taken as anonymous.
        public = f"docker://{server.host}/alice/public:v1"
        skopeo.run(
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-cert-dir",
            str(certs),
            "--dest-creds",
            "alice:alice-pw",
            f"oci:{image.layout}:v1",
            public,
        )
        anonymous = tmp_path / "anonymous"
        skopeo.run("copy", "--quiet", "--src-cert-dir", str(certs), public, f"oci:{anonymous}:v1")
        assert_same_image(anonymous, "v1", image)
        refused = skopeo.run(
            "copy",
            "--quiet",
            "--src-cert-dir",
            str(certs),
            dest,
            f"oci:{anonymous}:v2",
            check=False,
        )
        assert refused.returncode != 0

        podman = Podman(tmp_path / "podman")
        podman.run("login", "--cert-dir", str(certs), "-u", "alice", "-p", "alice-pw", server.host)
        auth_file = json.loads((tmp_path / "podman" / "auth.json").read_text())
        assert server.host in auth_file["auths"]
        podman.run("pull", "--cert-dir", str(certs), f"{server.host}/alice/app:v1")
        podman.run("tag", f"{server.host}/alice/app:v1", f"{server.host}/alice/copy:v2")
        podman.run("push", "--cert-dir", str(certs), f"{server.host}/alice/copy:v2")
        with client_for(server, "alice", "alice-pw") as c:
            assert c.get("/v2/alice/copy/tags/list").json()["tags"] == ["v2"]
        podman.run("logout", server.host)


def test_client_certificates_authenticate_their_common_name(tmp_path: Path) -> None:
    pki = server_pki(tmp_path / "pki")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {
            "tls": {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(pki.ca.cert_path)},
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": ACCESS,
        },
    )
    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        carol = pki.ca.client_context(tmp_path / "carol", "carol")
        with client_for(server, verify=carol) as c:
            assert c.get("/v2/").status_code == 200
            push_manifest(c, "carol/app", image_manifest(c, "carol/app"), "v1")
            assert_error(c.post("/v2/alice/app/blobs/uploads/"), 403, "DENIED")
        # Without a certificate: anonymous, or a password, as before.
        with client_for(server) as c:
            assert_error(c.get("/v2/carol/app/tags/list"), 401, "UNAUTHORIZED")
        with client_for(server, "alice", "alice-pw") as c:
            assert c.post("/v2/alice/app/blobs/uploads/").status_code == 202
        # A certificate from another CA (even one the system trusts) never gets in.
        rogue = Authority.create(tmp_path / "rogue", "rogue CA")
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert_path))
        d = rogue.client_dir(tmp_path / "rogue-client", "carol")
        ctx.load_cert_chain(d / "client.cert", d / "client.key")
        with pytest.raises(httpx.HTTPError), client_for(server, verify=ctx) as c:
            c.get("/v2/carol/app/tags/list")

        # skopeo presents the certificate from its cert dir: no --creds at all.
        skopeo = Skopeo(tmp_path / "skopeo")
        certs = pki.ca.client_dir(tmp_path / "skopeo-certs", "carol")
        image = build_image(tmp_path / "src", "v1", layers=1)
        skopeo.run(
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-cert-dir",
            str(certs),
            f"oci:{image.layout}:v1",
            f"docker://{server.host}/carol/skopeo:v1",
        )
        with client_for(server, verify=carol) as c:
            assert c.get("/v2/carol/skopeo/tags/list").json()["tags"] == ["v1"]


def test_client_certificates_are_required_when_they_are_the_only_way_in(tmp_path: Path) -> None:
    pki = server_pki(tmp_path / "pki")
    config = write_config(
        tmp_path / "config.json",
        {"tls": {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(pki.ca.cert_path)}},
    )
    carol = pki.ca.client_context(tmp_path / "carol", "carol")
    with serving(tmp_path / "data", config, tls=carol) as server:
        with client_for(server) as c:  # server.tls is carol's context
            assert c.get("/v2/").status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/v2/", verify=pki.ca.client_context(), timeout=5)


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    pki = server_pki(tmp_path / "pki")
    config = write_config(
        tmp_path / "config.json", {"tls": {"cert": str(pki.cert), "key": str(pki.key)}}
    )
    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        assert server.proc is not None
        pid = server.proc.pid
        before = _served_serial(server.port, pki.ca)
        with httpx.Client(base_url=server.url, verify=pki.ca.client_context()) as kept:
            assert kept.get("/v2/").status_code == 200
            # Renew: new key and certificate written in place, as certbot would.
            staging = tmp_path / "renewed"
            staging.mkdir()
            renewed = pki.ca.issue("127.0.0.1", staging / "c", staging / "k", server=True)
            (staging / "k").replace(pki.key)
            (staging / "c").replace(pki.cert)
            deadline = time.monotonic() + 15
            while _served_serial(server.port, pki.ca) == before:
                assert time.monotonic() < deadline, "renewed certificate never served"
                time.sleep(0.2)
            assert _served_serial(server.port, pki.ca) == renewed.serial_number
            # The connection opened before the renewal still works.
            assert kept.get("/v2/").status_code == 200
        assert server.proc.pid == pid and server.proc.poll() is None


def test_unusable_certificates_stop_at_load(tmp_path: Path) -> None:
    """A key that is not the certificate's is named at load time, not at the first client."""
    import subprocess
    import sys

    pki = server_pki(tmp_path / "pki")
    other = server_pki(tmp_path / "other")
    config = write_config(
        tmp_path / "config.json", {"tls": {"cert": str(pki.cert), "key": str(other.key)}}
    )
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "verify", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "http.tls: cert and key do not load as a pair" in done.stderr


def test_a_client_certificate_with_two_common_names_is_refused(tmp_path: Path) -> None:
    """Which of two CNs is the user is a guess (zot takes the first): refuse it, 401."""
    from certs import issue_client_names
    from cryptography.x509.oid import NameOID

    pki = server_pki(tmp_path / "pki")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {
            "tls": {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(pki.ca.cert_path)},
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": ACCESS,
        },
    )
    two = [
        x509.NameAttribute(NameOID.COMMON_NAME, "carol"),
        x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
    ]
    ambiguous = issue_client_names(pki.ca, two, tmp_path / "two")
    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        with client_for(server, verify=ambiguous) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
            assert_error(c.get("/v2/alice/app/tags/list"), 401, "UNAUTHORIZED")
            assert_error(c.post("/v2/carol/app/blobs/uploads/"), 401, "UNAUTHORIZED")
            # A password still works on that connection: it is the explicit credential.
            r = c.post("/v2/alice/app/blobs/uploads/", auth=("alice", "alice-pw"))
            assert r.status_code == 202
        one = issue_client_names(pki.ca, two[:1], tmp_path / "one")
        with client_for(server, verify=one) as c:
            assert c.post("/v2/carol/app/blobs/uploads/").status_code == 202
