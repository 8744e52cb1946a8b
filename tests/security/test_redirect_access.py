"""Who may be sent to the bucket: ``storageDriver.redirect`` on a root in moto's S3.

A 307 carries a presigned URL, a credential of its own that reads the blob for 20
minutes, so it must be given only to a caller the access check lets read the
repository: the guard answers before the handler ever signs one. Anonymous callers get
401 and authenticated ones without ``read`` 403, with no ``Location``; a repository
anonymous callers may read redirects them too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from auth_helpers import write_htpasswd
from conftest import Server
from s3_helpers import S3Server, s3_config, start_s3_registry
from spec_helpers import push_blob, random_blob

MiB = 1024 * 1024
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
#: alice may read and push under team/; bob, logged in too, has no grant there;
#: public/ is readable by anyone, pushable by alice.
ACCESS = {
    "repositories": {
        "team/**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]},
        "public/**": {
            "policies": [{"users": ["alice"], "actions": ["read", "create"]}],
            "anonymousPolicy": ["read"],
            "defaultPolicy": ["read"],
        },
    }
}


@pytest.fixture
def server(s3_server: S3Server, tmp_path: Path) -> Iterator[Server]:
    config = s3_config(s3_server, tmp_path / "data", s3_server.new_bucket())
    config["storage"]["storageDriver"]["redirect"] = True
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config["http"] = {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS}
    started = start_s3_registry(s3_server, tmp_path / "data", config=config)
    yield started
    started.stop()


def _client(server: Server, user: str | None = None) -> httpx.Client:
    auth = (user, USERS[user]) if user else None
    return httpx.Client(base_url=server.url, timeout=60, auth=auth)


def test_a_redirect_is_given_only_after_the_access_check(
    server: Server, s3_server: S3Server
) -> None:
    """alice's GET is a 307 to a presigned SigV4 URL of the object, valid 20 minutes,
    which serves the exact bytes and ranges with no other credential; anonymous gets 401
    and bob 403, never a URL; a HEAD is answered by the server itself; anyone may be
    redirected for a repository anonymous callers may read."""
    data = random_blob(3 * MiB + 17)
    with _client(server, "alice") as alice:
        digest = push_blob(alice, "team/app", data)
        assert push_blob(alice, "public/app", data) == digest
        url = f"/v2/team/app/blobs/{digest}"
        got = alice.get(url)
        assert got.status_code == 307, got.text
        assert got.headers["Docker-Content-Digest"] == digest
        assert "max-age" not in got.headers.get("Cache-Control", "")
        location = got.headers["Location"]
        assert location.startswith(s3_server.endpoint + "/"), location
        assert digest.removeprefix("sha256:") in urlsplit(location).path
        query = parse_qs(urlsplit(location).query)
        assert query["X-Amz-Expires"] == ["1200"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        head = alice.head(url)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
    with httpx.Client(timeout=60) as anyone:  # the URL is the credential
        assert anyone.get(location).content == data
        part = anyone.get(location, headers={"Range": "bytes=1048570-2097160"})
        assert part.status_code == 206 and part.content == data[1048570:2097161]
    with _client(server) as anon:
        denied = anon.get(url)
        assert denied.status_code == 401 and "Location" not in denied.headers
        public = anon.get(f"/v2/public/app/blobs/{digest}")
        assert public.status_code == 307 and public.headers["Location"].startswith(
            s3_server.endpoint + "/"
        )
    with _client(server, "bob") as bob:
        denied = bob.get(url)
        assert denied.status_code == 403 and "Location" not in denied.headers
    output = server.output()
    assert "Traceback" not in output
    assert "not implemented" not in output  # ``redirect`` is a known key
