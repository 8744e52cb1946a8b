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
from typing import Any

import httpx
import pytest
from auth_helpers import client_for, serving, write_config, write_htpasswd
from certs import Authority, server_pki
from clients_helpers import Podman, Skopeo, assert_same_image
from cryptography import x509
from images import build_image
from spec_helpers import assert_error, image_manifest, push_manifest

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


def _client_cert_works(server_url: str, ctx: ssl.SSLContext, repo: str) -> bool:
    """Whether a request with this client certificate gets in as its CN: True when the
    upload opens (202); False when the handshake is refused."""
    try:
        with httpx.Client(base_url=server_url, verify=ctx, timeout=10) as c:
            r = c.post(f"/v2/{repo}/blobs/uploads/")
    except httpx.HTTPError:
        return False
    assert r.status_code == 202, r.text
    return True


def _until(condition: object, seconds: float = 15) -> None:
    """Poll ``condition()`` (a reload is asynchronous) until true, failing at the deadline."""
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server never took up the change"
        time.sleep(0.2)


def test_a_replaced_client_ca_is_trusted_instead_of_the_old_one(tmp_path: Path) -> None:
    """``cacert`` overwritten + SIGHUP: the old CA's client certificates are refused at
    once, the new CA's accepted; the server's own certificate and process stay."""
    import signal

    pki = server_pki(tmp_path / "pki")
    clients_ca = tmp_path / "clients-ca.pem"
    clients_ca.write_bytes(pki.ca.cert_path.read_bytes())
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {
            "tls": {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(clients_ca)},
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": ACCESS,
        },
    )
    new_ca = Authority.create(tmp_path / "new-ca", "replacement client CA")
    old_client = pki.ca.client_context(tmp_path / "old-carol", "carol")
    new_client = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    d = new_ca.client_dir(tmp_path / "new-carol", "carol")
    new_client.load_cert_chain(d / "client.cert", d / "client.key")
    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        assert server.proc is not None
        assert _client_cert_works(server.url, old_client, "carol/app")
        assert not _client_cert_works(server.url, new_client, "carol/app")
        staged = tmp_path / "ca.staged"
        staged.write_bytes(new_ca.cert_path.read_bytes())
        staged.replace(clients_ca)
        server.proc.send_signal(signal.SIGHUP)
        _until(lambda: not _client_cert_works(server.url, old_client, "carol/app"))
        assert _client_cert_works(server.url, new_client, "carol/app")
        # Passwords and the server's certificate are untouched by the swap.
        with client_for(server, "alice", "alice-pw") as c:
            assert c.post("/v2/alice/app/blobs/uploads/").status_code == 202
        assert server.proc.poll() is None


def test_a_crl_refuses_revoked_client_certificates_and_is_reloaded(tmp_path: Path) -> None:
    """``http.tls.crl``: a revoked certificate is refused at the handshake, others get in;
    a new CRL written over the file is in force within seconds, with no signal."""
    from certs import write_crl

    pki = server_pki(tmp_path / "pki")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    carol_cert = pki.ca.issue("carol", tmp_path / "carol.crt", tmp_path / "carol.key", server=False)
    mallory = pki.ca.issue("carol", tmp_path / "mal.crt", tmp_path / "mal.key", server=False)
    crl = write_crl(pki.ca, tmp_path / "clients.crl", [mallory])
    config = write_config(
        tmp_path / "config.json",
        {
            "tls": {
                "cert": str(pki.cert),
                "key": str(pki.key),
                "cacert": str(pki.ca.cert_path),
                "crl": str(crl),
            },
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": ACCESS,
        },
    )

    def client(name: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert_path))
        ctx.load_cert_chain(tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
        return ctx

    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        assert not _client_cert_works(server.url, client("mal"), "carol/app")
        assert _client_cert_works(server.url, client("carol"), "carol/app")
        with client_for(server, "alice", "alice-pw") as c:  # no certificate: unaffected
            assert c.post("/v2/alice/app/blobs/uploads/").status_code == 202
        write_crl(pki.ca, crl, [mallory, carol_cert])
        _until(lambda: not _client_cert_works(server.url, client("carol"), "carol/app"))
        assert not _client_cert_works(server.url, client("mal"), "carol/app")


def test_a_crl_needs_the_client_ca_and_must_be_its(tmp_path: Path) -> None:
    """At load: ``crl`` without ``cacert``, a missing file, or a CRL another CA signed
    (which would refuse every client certificate) stop with the key named."""
    import subprocess
    import sys

    from certs import write_crl

    pki = server_pki(tmp_path / "pki")
    other = Authority.create(tmp_path / "other", "other CA")
    theirs = write_crl(other, tmp_path / "other.crl", [])
    ours = write_crl(pki.ca, tmp_path / "ours.crl", [])
    base = {"cert": str(pki.cert), "key": str(pki.key)}
    ca = pki.ca.cert_path
    cases = {
        "without-ca": ({**base, "crl": str(ours)}, "set cacert too"),
        "missing": ({**base, "cacert": str(ca), "crl": "/nonexistent"}, "no such file"),
        "other-ca": ({**base, "cacert": str(ca), "crl": str(theirs)}, "not signed by a CA"),
        "not-a-crl": ({**base, "cacert": str(ca), "crl": str(pki.cert)}, "holds no PEM CRL"),
    }
    for name, (tls, why) in cases.items():
        config = write_config(tmp_path / f"{name}.json", {"tls": tls})
        done = subprocess.run(
            [sys.executable, "-m", "dockyard", "verify", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (name, done.stderr)
        assert "http.tls" in done.stderr and "crl" in done.stderr, (name, done.stderr)
        assert why in done.stderr and "Traceback" not in done.stderr, (name, done.stderr)
    config = write_config(
        tmp_path / "good.json", {"tls": {**base, "cacert": str(pki.ca.cert_path), "crl": str(ours)}}
    )
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "verify", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def _raw_get(port: int, ctx: ssl.SSLContext, path: str, session: object = None) -> tuple[int, Any]:
    """One HTTP/1.1 GET over a TLS socket of our own (httpx cannot resume a session):
    the status, and the TLS session to resume next time."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        reused = tls.session_reused
        status = int(data.split(b" ", 2)[1])
        return status, (tls.session, reused)


def test_a_tls_session_from_before_the_ca_change_is_not_believed(tmp_path: Path) -> None:
    """TLS 1.2 session-ID resumption skips certificate checks: a session the old CA's
    certificate opened, resumed after the CA was replaced, gets 401, not carol's rights."""
    import signal

    pki = server_pki(tmp_path / "pki")
    clients_ca = tmp_path / "clients-ca.pem"
    clients_ca.write_bytes(pki.ca.cert_path.read_bytes())
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {
            "tls": {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(clients_ca)},
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": ACCESS,
        },
    )
    old_client = pki.ca.client_context(tmp_path / "old-carol", "carol")
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    path = "/v2/carol/app/tags/list"  # carol may read it: 404 (absent), not 401
    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        assert server.proc is not None
        status, (session, _) = _raw_get(server.port, old_client, path)
        assert status == 404
        status, (session, reused) = _raw_get(server.port, old_client, path, session)
        assert reused and status == 404  # resumption works, and is believed, until...
        new_ca = Authority.create(tmp_path / "new-ca", "replacement client CA")
        time.sleep(1.1)  # session times are whole seconds; the change must be later
        clients_ca.write_bytes(new_ca.cert_path.read_bytes())
        server.proc.send_signal(signal.SIGHUP)
        _until(lambda: not _client_cert_works(server.url, old_client, "carol/app"))
        status, (_, reused) = _raw_get(server.port, old_client, path, session)
        assert reused, "the server no longer resumes sessions: nothing left to test"
        assert status == 401
