""" "No secret reaches a log": secrets typed into every field of a login, and the logs
grepped for them (issue 15, item 5). A failed login's user name is logged only when it
names a real user; anything else (a password or key typed as the name) only as a hash."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
from auth_helpers import client_for, serving, write_config, write_htpasswd
from spec_helpers import assert_error

PASSWORD = "Tr0ub4dor-and-3-horses"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_no_secret_in_any_log_whatever_field_it_is_typed_in(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": PASSWORD})
    audit, main_log = tmp_path / "audit.log", tmp_path / "dockyard.log"
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True, "failLimit": 0}},
        log={"level": "debug", "output": str(main_log), "audit": str(audit)},
    )
    with serving(tmp_path / "data", config) as server:
        with client_for(server, "alice", PASSWORD) as alice:
            key = alice.post("/zot/auth/apikey", json={"label": "ci"}).json()["apiKey"]
        wrong_key = key[:-4] + ("0000" if not key.endswith("0000") else "1111")
        secrets = [PASSWORD, key, wrong_key]
        attempts: list[dict[str, str]] = []
        for secret in secrets:
            attempts += [
                {"Authorization": "Basic " + _b64(f"{secret}:{PASSWORD}")},  # as the name
                {"Authorization": "Basic " + _b64(f"{secret}:x")},
                {"Authorization": "Basic " + _b64(f"{secret}:")},
                {"Authorization": "Basic " + _b64(f"alice:{secret}x")},  # a near miss
                {"Authorization": "Basic " + _b64(f"nobody:{secret}")},
                {"Authorization": f"Bearer {secret}"},
                {"Authorization": secret},  # no scheme at all
                {"Authorization": "Basic " + secret},  # not base64
                {"Authorization": f"Digest username={secret}"},
            ]
        with httpx.Client(base_url=server.url, timeout=30) as anon:
            for headers in attempts:
                r = anon.post("/v2/app/blobs/uploads/", headers=headers)
                assert_error(r, 401, "UNAUTHORIZED")
                assert_error(anon.get("/v2/", headers=headers), 401, "UNAUTHORIZED")
            for secret in secrets:  # in the query string, which no log keeps
                r = anon.post("/v2/app/blobs/uploads/", params={"password": secret})
                assert_error(r, 401, "UNAUTHORIZED")
        with client_for(server, "alice", "wrong") as bad:
            assert_error(bad.post("/v2/app/blobs/uploads/"), 401, "UNAUTHORIZED")
        output = server.output()

    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    refused = [line for line in lines if line["result"] == "unauthorized"]
    assert len(refused) >= len(attempts)
    forms = []
    for secret in secrets:
        forms += [secret, _b64(f"{secret}:{PASSWORD}"), _b64(f"alice:{secret}x")]
        forms += [_b64(f"nobody:{secret}"), _b64(f"{secret}:x")]
        if secret.startswith("zak_"):
            forms.append(secret[4:])
    for name, text in {
        "audit log": audit.read_text(),
        "main log": main_log.read_text(),
        "server output": output,
    }.items():
        for form in forms:
            assert form not in text, f"a secret ({form[:6]}...) reached the {name}"
    assert "/v2/app/blobs/uploads/" in main_log.read_text(), "the debug log saw no request"
    # A real user's failed login names the user; a secret typed as the name is a hash.
    assert refused[-1]["user"] == "alice"
    typed = [line for line in refused if line.get("userHash")]
    assert typed and all(line["user"] is None for line in typed)
    assert all(len(line["userHash"]) == 16 for line in typed)
