"""The access matrix: who may do what to which repository, over HTTP, every cell asserted.

One server with htpasswd and a zot-format ``accessControl`` (groups, globs of every
kind, per-user and group policies, ``defaultPolicy``, ``anonymousPolicy``,
``adminPolicy``). Callers: anonymous, alice, bob, carol (in group ``devs``), and admin.
For each repository and each action (read, create, update, delete) the test drives the
endpoints that need it and checks the outcome: allowed gives the endpoint's success;
denied gives 401 with a challenge to an anonymous caller and 403 ``DENIED`` to an
authenticated one, and never reveals whether the repository or content exists. The
catalog lists exactly the readable repositories, page by page. Dedupe's HEAD link-in and
cross-repository mounts take a blob only from a repository the caller may read (a push
links any stored copy, but only for bytes it sent whole and that matched). A tag
that appears while a create-only PUT is in flight is a move by the time it publishes
(403), an upload session is its opener's alone, and an API key carries its user's cells
only while the user exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from auth_helpers import client_for, serving, write_config, write_htpasswd
from conftest import Server
from slow_request import SlowRequest
from spec_helpers import (
    Pushed,
    assert_error,
    dumps,
    get_manifest,
    image_manifest,
    next_link,
    push_blob,
    push_manifest,
    random_blob,
    sha256_digest,
)

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "admin": "admin-pw"}
CALLERS = ["anonymous", "alice", "bob", "carol", "admin"]
ALL = ["read", "create", "update", "delete"]

ACCESS_CONTROL = {
    "groups": {"devs": {"users": ["carol"]}},
    "repositories": {
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"]},
        "team/*": {
            "policies": [
                {"users": ["alice"], "actions": ALL},
                {"groups": ["devs"], "actions": ["read", "create"]},
            ],
            "defaultPolicy": ["read"],
        },
        # Longer than team/*, so it alone decides for team/secret: alice has nothing here.
        "team/secret": {"policies": [{"users": ["bob"], "actions": ["read"]}]},
        "alice/**": {"policies": [{"users": ["alice"], "actions": ALL}]},
        "shared/**": {"defaultPolicy": ["read", "create"]},
    },
    "adminPolicy": {"users": ["admin"], "actions": ALL},
}

# other/app matches no glob: only the admin policy reaches it.
REPOS = ["public/app", "team/app", "team/secret", "alice/app", "shared/app", "other/app"]

# The matrix itself, written out: caller -> repository -> allowed actions.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "anonymous": {"public/app": {"read"}},
    "alice": {
        "public/app": {"read"},
        "team/app": set(ALL),
        "alice/app": set(ALL),
        "shared/app": {"read", "create"},
    },
    "bob": {
        "public/app": {"read"},
        "team/app": {"read"},
        "team/secret": {"read"},
        "shared/app": {"read", "create"},
    },
    "carol": {
        "public/app": {"read"},
        "team/app": {"read", "create"},
        "shared/app": {"read", "create"},
    },
    "admin": {repo: set(ALL) for repo in REPOS},
}


@dataclass
class Fixture:
    """What the admin put in each repository before the matrix runs."""

    image: Pushed
    digest: str
    #: Per caller: a manifest tagged ``del-<caller>`` and a blob, for its delete cells.
    doomed: dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("matrix")
    htpasswd = write_htpasswd(tmp / "htpasswd", PASSWORDS)
    config = write_config(
        tmp / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS_CONTROL},
    )
    with serving(tmp / "data", config) as server:
        yield server


@pytest.fixture(scope="module")
def fixtures(registry: Server) -> dict[str, Fixture]:
    out = {}
    with client_for(registry, "admin", PASSWORDS["admin"]) as admin:
        for repo in REPOS:
            image = image_manifest(admin, repo)
            digest = push_manifest(admin, repo, image, "v1").digest
            doomed = {}
            for caller in CALLERS:
                victim = image_manifest(admin, repo, annotations={"for": caller})
                push_manifest(admin, repo, victim, f"del-{caller}")
                blob = push_blob(admin, repo, random_blob())
                doomed[caller] = (f"del-{caller}", blob)
            out[repo] = Fixture(image, digest, doomed)
    return out


def _client(registry: Server, caller: str) -> httpx.Client:
    if caller == "anonymous":
        return client_for(registry)
    return client_for(registry, caller, PASSWORDS[caller])


def _check(resp: httpx.Response, caller: str, allowed: bool, ok: tuple[int, ...], what: str):
    """Allowed: one of the ``ok`` statuses. Denied: 401+challenge or 403 DENIED."""
    if allowed:
        assert resp.status_code in ok, f"{caller}: {what} -> {resp.status_code} {resp.text}"
    elif resp.request.method == "HEAD":  # no body to carry the error code
        assert resp.status_code == (401 if caller == "anonymous" else 403), what
    elif caller == "anonymous":
        assert_error(resp, 401, "UNAUTHORIZED")
        assert resp.headers["WWW-Authenticate"].startswith("Basic realm="), what
    else:
        assert_error(resp, 403, "DENIED")


def test_every_cell_of_the_matrix(registry: Server, fixtures: dict[str, Fixture]) -> None:
    """5 callers x 6 repositories x 4 actions, each through every endpoint needing it."""
    for caller in CALLERS:
        with _client(registry, caller) as c:
            for repo in REPOS:
                allowed = EXPECTED[caller].get(repo, set())
                fx = fixtures[repo]
                where = f"{caller} on {repo}"

                # read: manifests by tag and digest, HEAD, blobs, tags, referrers
                can = "read" in allowed
                for method in ("GET", "HEAD"):
                    for ref in ("v1", fx.digest):
                        r = get_manifest(c, repo, ref, method)
                        _check(r, caller, can, (200,), f"{where}: {method} manifest {ref}")
                    r = c.request(method, f"/v2/{repo}/blobs/{fx.image.blobs[0]}")
                    _check(r, caller, can, (200,), f"{where}: {method} blob")
                r = c.get(f"/v2/{repo}/tags/list")
                _check(r, caller, can, (200,), f"{where}: tags/list")
                if can:
                    assert "v1" in r.json()["tags"]
                r = c.get(f"/v2/{repo}/referrers/{fx.digest}")
                _check(r, caller, can, (200,), f"{where}: referrers")

                # create: every upload flavour, and a manifest under a new tag
                can = "create" in allowed
                data = random_blob()
                r = c.post(
                    f"/v2/{repo}/blobs/uploads/",
                    params={"digest": sha256_digest(data)},
                    content=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                _check(r, caller, can, (201,), f"{where}: monolithic upload")
                r = c.post(f"/v2/{repo}/blobs/uploads/")
                _check(r, caller, can, (202,), f"{where}: start upload")
                if can:
                    session = r.headers["Location"]
                    r = c.patch(session, content=b"abc")
                    _check(r, caller, can, (202,), f"{where}: patch upload")
                    r = c.delete(r.headers["Location"])
                    _check(r, caller, can, (204,), f"{where}: cancel upload")
                fresh = f"new-{caller}-{uuid.uuid4().hex[:6]}"
                r = c.put(
                    f"/v2/{repo}/manifests/{fresh}",
                    content=fx.image.body,
                    headers={"Content-Type": fx.image.media_type},
                )
                _check(r, caller, can, (201,), f"{where}: PUT manifest to a new tag")

                # update: PUT to the existing tag v1 moves it (to other content)
                can = "update" in allowed
                moved = dict(fx.image.manifest, annotations={"moved-by": caller})
                r = c.put(
                    f"/v2/{repo}/manifests/v1",
                    content=dumps(moved),
                    headers={"Content-Type": fx.image.media_type},
                )
                _check(r, caller, can, (201,), f"{where}: move tag v1")
                # ?tag= naming an existing tag is an update too
                r = c.put(
                    f"/v2/{repo}/manifests/{sha256_digest(dumps(moved))}",
                    params={"tag": "v1"},
                    content=dumps(moved),
                    headers={"Content-Type": fx.image.media_type},
                )
                _check(r, caller, can, (201,), f"{where}: PUT by digest with ?tag=v1")

                # delete: a manifest tag, then a blob
                can = "delete" in allowed
                tag, blob = fx.doomed[caller]
                r = c.delete(f"/v2/{repo}/manifests/{tag}")
                _check(r, caller, can, (202,), f"{where}: DELETE manifest tag")
                r = c.delete(f"/v2/{repo}/blobs/{blob}")
                _check(r, caller, can, (202,), f"{where}: DELETE blob")


def test_denial_never_reveals_existence(registry: Server, fixtures: dict[str, Fixture]) -> None:
    """A caller denied a repository gets the same answer whether it or its content exists."""
    with _client(registry, "alice") as alice, _client(registry, "anonymous") as anon:
        for repo in ("team/secret", "other/app", "other/missing", "team/secret/deeper"):
            for ref in ("v1", "nope", fixtures["team/secret"].digest):
                assert_error(get_manifest(alice, repo, ref), 403, "DENIED")
                assert_error(get_manifest(anon, repo, ref), 401, "UNAUTHORIZED")
            assert_error(alice.get(f"/v2/{repo}/tags/list"), 403, "DENIED")


def _walk_catalog(client: httpx.Client, n: int | None) -> list[str]:
    url: str | None = "/v2/_catalog" + (f"?n={n}" if n else "")
    names: list[str] = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text
        page = r.json()["repositories"]
        if n:
            assert len(page) <= n
        names += page
        url = next_link(r)
    return names


def test_catalog_lists_only_readable_repositories(
    registry: Server, fixtures: dict[str, Fixture]
) -> None:
    """Each caller's catalog is exactly its readable repositories, whole or paged."""
    for caller in CALLERS:
        readable = sorted(r for r, acts in EXPECTED[caller].items() if "read" in acts)
        with _client(registry, caller) as c:
            assert _walk_catalog(c, None) == readable, caller
            assert _walk_catalog(c, 1) == readable, caller
            assert _walk_catalog(c, 2) == readable, caller


def test_head_link_and_mount_only_from_readable_repositories(
    registry: Server, fixtures: dict[str, Fixture]
) -> None:
    """Dedupe and mounts must not hand anyone a blob they could not read where it is."""
    with _client(registry, "admin") as admin:
        secret = push_blob(admin, "team/secret", random_blob(256))
    with _client(registry, "alice") as alice, _client(registry, "bob") as bob:
        # HEAD link-in: alice cannot read team/secret, so her repo does not get its blob.
        assert alice.head(f"/v2/shared/app/blobs/{secret}").status_code == 404
        assert alice.head(f"/v2/alice/app/blobs/{secret}").status_code == 404
        # Mounts: with from= an unreadable repo, or without from, she must upload instead.
        r = alice.post(
            "/v2/alice/app/blobs/uploads/", params={"mount": secret, "from": "team/secret"}
        )
        assert r.status_code == 202, r.text
        r = alice.post("/v2/alice/app/blobs/uploads/", params={"mount": secret})
        assert r.status_code == 202, r.text
        assert alice.get(f"/v2/alice/app/blobs/{secret}").status_code == 404
        # bob may read team/secret, so he can mount from it and HEAD-link it.
        r = bob.post(
            "/v2/shared/app/blobs/uploads/", params={"mount": secret, "from": "team/secret"}
        )
        assert r.status_code == 201, r.text
        with _client(registry, "admin") as admin:
            other = push_blob(admin, "team/secret", random_blob(256))
        assert bob.head(f"/v2/shared/app/blobs/{other}").status_code == 200
        # Now shared/app holds it, and alice may read shared/app: fine, she sees it there.
        assert alice.head(f"/v2/shared/app/blobs/{other}").status_code == 200


def test_a_push_links_an_unreadable_copy_only_for_the_bytes_sent(
    registry: Server, fixtures: dict[str, Fixture]
) -> None:
    """A monolithic push of bytes only an unreadable repository holds is hashed against
    that copy (not stored again), but links it in only when the pusher sent the bytes
    whole and they matched: she learns nothing she did not send, and wrong bytes under
    that digest gain her nothing."""
    data = random_blob(2 * 1024 * 1024)
    with _client(registry, "admin") as admin:
        secret = push_blob(admin, "team/secret", data)
    with _client(registry, "alice") as alice:
        assert alice.head(f"/v2/alice/app/blobs/{secret}").status_code == 404
        forged = random_blob(len(data))
        for params in ({}, {"digest": secret}):  # PUT after POST, and POST ?digest=
            if params:
                resp = alice.post("/v2/alice/app/blobs/uploads/", params=params, content=forged)
            else:
                location = alice.post("/v2/alice/app/blobs/uploads/").headers["Location"]
                resp = alice.put(location, params={"digest": secret}, content=forged)
            assert_error(resp, 400, "DIGEST_INVALID")
            assert alice.get(f"/v2/alice/app/blobs/{secret}").status_code == 404
        # bob may only read team/app: his push is refused before a byte is hashed.
        with _client(registry, "bob") as bob:
            resp = bob.post("/v2/team/app/blobs/uploads/", params={"digest": secret}, content=data)
            assert_error(resp, 403, "DENIED")
            assert bob.get(f"/v2/team/app/blobs/{secret}").status_code == 404
        assert push_blob(alice, "alice/app", data) == secret
        got = alice.get(f"/v2/alice/app/blobs/{secret}")
        assert got.status_code == 200 and got.content == data


def test_base_endpoint_and_login(registry: Server, fixtures: dict[str, Fixture]) -> None:
    """``/v2/`` asks anonymous callers to log in; a good login gets 200, a bad one 401.

    ``fixtures``: the anonymous read below needs public/app to exist, whatever ran before.
    """
    with _client(registry, "anonymous") as anon:
        r = anon.get("/v2/")
        assert_error(r, 401, "UNAUTHORIZED")
        assert r.headers["WWW-Authenticate"] == 'Basic realm="dockyard"'
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        # containers/image sends empty Basic credentials when it has none: anonymous.
        r = anon.get("/v2/public/app/tags/list", auth=("", ""))
        assert r.status_code == 200
    for caller in ("alice", "admin"):
        with _client(registry, caller) as c:
            assert c.get("/v2/").status_code == 200
    with client_for(registry, "alice", "wrong") as bad:
        for path in ("/v2/", "/v2/public/app/tags/list", "/v2/_catalog"):
            r = bad.get(path)
            assert_error(r, 401, "UNAUTHORIZED")
            assert "WWW-Authenticate" in r.headers
    with client_for(registry, "mallory", "alice-pw") as nobody:
        assert_error(nobody.get("/v2/"), 401, "UNAUTHORIZED")
    # Two Authorization headers are refused, whatever they hold.
    r = httpx.get(
        f"{registry.url}/v2/",
        headers=[("Authorization", "Basic YWxpY2U6YWxpY2UtcHc="), ("Authorization", "Basic x")],
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v2/public/../team/secret/manifests/v1",
        "/v2/public/%2e%2e/team/secret/manifests/v1",
        "/v2/public/..%2Fteam%2Fsecret/manifests/v1",
        "/v2/public/app/../../team/secret/tags/list",
        "/v2/public//app/manifests/v1",
        "/v2/public/./app/manifests/v1",
        "/v2/PUBLIC/app/manifests/v1",
    ],
)
def test_path_tricks_never_cross_a_policy(
    registry: Server, fixtures: dict[str, Fixture], path: str
) -> None:
    """Dot segments, encoded slashes and case tricks reach no repository by the back door.

    ``public/**`` grants anonymous read, so a path that smuggled team/secret past the
    glob while the storage resolved it would leak. Each is rejected or denied instead.
    """
    from spec_helpers import raw_request

    r = raw_request(registry.url, "GET", path)
    assert r.status_code in (400, 401, 404), f"{path}: {r.status_code} {r.text}"
    assert fixtures["team/secret"].digest not in r.text
    if r.status_code == 200:  # pragma: no cover - the assertion above forbids it
        pytest.fail(f"{path} served content")
    body = r.text
    assert "schemaVersion" not in body, f"{path} leaked a manifest: {json.loads(body)}"


def test_admin_of_nothing_else_and_unknown_users_get_nothing(tmp_path: Path) -> None:
    """With only adminPolicy, others authenticate fine and are denied everything (403)."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"root": "r", "joe": "j"})
    config = write_config(
        tmp_path / "config.json",
        {
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": {"adminPolicy": {"users": ["root"], "actions": ["read", "create"]}},
        },
    )
    with serving(tmp_path / "data", config) as server:
        with client_for(server, "root", "r") as root:
            image = image_manifest(root, "x/y")
            push_manifest(root, "x/y", image, "v1")
            assert root.get("/v2/_catalog").json()["repositories"] == ["x/y"]
            # adminPolicy grants only its actions: no delete for root.
            assert_error(root.delete("/v2/x/y/manifests/v1"), 403, "DENIED")
        with client_for(server, "joe", "j") as joe:
            assert joe.get("/v2/").status_code == 200
            assert_error(get_manifest(joe, "x/y", "v1"), 403, "DENIED")
            assert joe.get("/v2/_catalog").json()["repositories"] == []


@pytest.fixture(scope="module")
def link_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own for the link-in cells, which create repositories: the shared
    one's catalog must stay exactly the matrix's repositories."""
    tmp = tmp_path_factory.mktemp("linkin")
    htpasswd = write_htpasswd(tmp / "htpasswd", PASSWORDS)
    config = write_config(
        tmp / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS_CONTROL},
    )
    with serving(tmp / "data", config) as server:
        yield server


# (caller, target repository that does not exist yet, whether the caller may create there).
# Every caller may read public/app, where the blob is; each may read its target too.
LINK_IN_CELLS = [
    ("anonymous", "public/zzz", False),  # anonymousPolicy: read
    ("bob", "team/zzz", False),  # defaultPolicy: read
    ("carol", "team/zzz-carol", True),  # group devs: read + create
    ("alice", "shared/zzz", True),  # defaultPolicy: read + create
]


@pytest.mark.parametrize(("caller", "target", "creates"), LINK_IN_CELLS)
def test_head_links_in_only_for_callers_who_may_create(
    link_registry: Server, caller: str, target: str, creates: bool
) -> None:
    """A HEAD of a blob held in another readable repository links it in (200) only for a
    caller holding ``create`` on the target: it is the pusher's "may I skip this upload?".
    Anyone else gets the 404 they would get without dedupe, and no folder appears on disk
    or in the catalog: a read never changes storage."""
    from spec_helpers import error_codes

    with _client(link_registry, "admin") as admin:
        layer = push_blob(admin, "public/app", random_blob(300))
    folder = link_registry.root / target
    with _client(link_registry, caller) as c:
        # A GET never links, whoever asks.
        assert c.get(f"/v2/{target}/blobs/{layer}").status_code == 404
        assert not folder.exists()
        r = c.head(f"/v2/{target}/blobs/{layer}")
        if creates:
            assert r.status_code == 200, f"{caller}: HEAD -> {r.status_code}"
            assert r.headers["Docker-Content-Digest"] == layer
            assert (folder / "index.json").is_file()
            assert c.get(f"/v2/{target}/blobs/{layer}").status_code == 200
        else:
            assert r.status_code == 404, f"{caller}: HEAD -> {r.status_code}"
            assert not folder.exists(), f"{caller}'s HEAD created {target} on disk"
            r = c.get(f"/v2/{target}/blobs/{layer}")
            assert r.status_code == 404
            assert error_codes(r)[0] in ("BLOB_UNKNOWN", "NAME_UNKNOWN"), r.text
    with _client(link_registry, "admin") as admin:
        assert (target in _walk_catalog(admin, None)) == creates


@pytest.mark.parametrize("caller", ["anonymous", "alice"])
@pytest.mark.parametrize(
    "path",
    ["/v2/public%2Fapp/tags/list", "/v2/public%2Fapp/manifests/v1", "/v2/team%2Fsecret/tags/list"],
)
def test_encoded_slash_is_name_invalid_before_any_policy(
    registry: Server, fixtures: dict[str, Fixture], caller: str, path: str
) -> None:
    """The guard reads the name as the client wrote it: ``public%2Fapp`` is no name, so it
    is 400 NAME_INVALID for everyone, never served as public/app nor judged as it."""
    import base64

    from spec_helpers import raw_request

    headers = {}
    if caller != "anonymous":
        token = base64.b64encode(f"{caller}:{PASSWORDS[caller]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    assert_error(raw_request(registry.url, "GET", path, headers=headers), 400, "NAME_INVALID")


# --- Tags move only with `update`, decided when the manifest is published (issue 15) ---


def _slow_put(
    registry: Server, caller: str, repo: str, ref: str, pushed: Pushed, tag: str | None = None
) -> SlowRequest:
    """A PUT of a manifest whose body stalls after 10 bytes (see slow_request)."""
    # Her password is verified (and cached) first, so the server decides on the slow
    # request's headers the moment it has them: 100 Continue then means "decided".
    with _client(registry, caller) as c:
        assert c.get("/v2/").status_code == 200
    path = f"/v2/{repo}/manifests/{ref}" + (f"?tag={tag}" if tag else "")
    return SlowRequest(
        registry.url, "PUT", path, pushed.body, (caller, PASSWORDS[caller]), pushed.media_type
    )


def _assert_move_refused(resp: httpx.Response, tag: str) -> None:
    """403 DENIED from the publish-time check (its detail names the tag), not the early one."""
    assert_error(resp, 403, "DENIED")
    assert resp.json()["errors"][0]["detail"]["tag"] == tag, resp.text


def test_create_only_cannot_move_a_tag_created_while_its_body_was_in_flight(
    registry: Server, fixtures: dict[str, Fixture]
) -> None:
    """The TOCTOU: carol (read+create on team/app) starts a PUT to a new tag and stalls;
    the admin creates that tag; carol's PUT completes. It is a move by then: 403, and the
    tag still points at the admin's manifest. The same with the tag in ``?tag=``."""
    repo = "team/app"
    with _client(registry, "admin") as admin, _client(registry, "carol") as carol:
        for how in ("reference", "query"):
            tag = f"release-{uuid.uuid4().hex[:6]}"
            mine = image_manifest(carol, repo, annotations={"by": "carol"})
            theirs = image_manifest(admin, repo, annotations={"by": "admin"})
            if how == "reference":
                slow = _slow_put(registry, "carol", repo, tag, mine)
            else:
                slow = _slow_put(registry, "carol", repo, mine.digest, mine, tag=tag)
            push_manifest(admin, repo, theirs, tag)
            _assert_move_refused(slow.finish(), tag)
            r = get_manifest(carol, repo, tag)
            assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == theirs.digest
            # Nothing of the refused PUT was published, not even by digest.
            assert_error(get_manifest(carol, repo, mine.digest), 404, "MANIFEST_UNKNOWN")
        # alice holds update on team/app: the same race is an ordinary move for her.
        tag = f"release-{uuid.uuid4().hex[:6]}"
        with _client(registry, "alice") as alice:
            mine = image_manifest(alice, repo, annotations={"by": "alice"})
            slow = _slow_put(registry, "alice", repo, tag, mine)
            push_manifest(admin, repo, image_manifest(admin, repo), tag)
            assert slow.finish().status_code == 201
            assert get_manifest(alice, repo, tag).headers["Docker-Content-Digest"] == mine.digest


def test_two_simultaneous_puts_to_one_new_tag_by_a_create_only_user(
    registry: Server, fixtures: dict[str, Fixture]
) -> None:
    """Both PUTs pass the early check (the tag is new for each); exactly one publishes,
    the other would move it and gets 403. Same content or not, as in zot."""
    repo = "team/app"
    with _client(registry, "carol") as carol:
        for same_content in (False, True):
            tag = f"race-{uuid.uuid4().hex[:6]}"
            first = image_manifest(carol, repo, annotations={"n": "1"})
            second = first if same_content else image_manifest(carol, repo)
            one = _slow_put(registry, "carol", repo, tag, first)
            two = _slow_put(registry, "carol", repo, tag, second)
            answers = [two.finish(), one.finish()]
            assert [r.status_code for r in answers] == [201, 403], [r.text for r in answers]
            _assert_move_refused(answers[1], tag)
            r = get_manifest(carol, repo, tag)
            assert r.headers["Docker-Content-Digest"] == second.digest


# --- An upload session is its opener's alone (issue 15) ---


def test_upload_sessions_belong_to_whoever_opened_them(
    registry: Server, fixtures: dict[str, Fixture]
) -> None:
    """alice and carol both hold create on team/app (the admin everything): neither carol
    nor the admin can query, feed, finish or cancel alice's session; to them it does not
    exist (404 BLOB_UPLOAD_UNKNOWN). bob, without create, is refused before that (403)."""
    repo = "team/app"
    with (
        _client(registry, "alice") as alice,
        _client(registry, "carol") as carol,
        _client(registry, "admin") as admin,
        _client(registry, "bob") as bob,
    ):
        r = alice.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        session = r.headers["Location"]
        assert alice.patch(session, content=b"abc").status_code == 202
        for other in (carol, admin):
            assert_error(other.get(session), 404, "BLOB_UPLOAD_UNKNOWN")
            assert_error(other.patch(session, content=b"evil"), 404, "BLOB_UPLOAD_UNKNOWN")
            r = other.put(session, params={"digest": sha256_digest(b"abc")})
            assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
            assert_error(other.delete(session), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(bob.get(session), 403, "DENIED")
        # alice's session is as she left it, and hers to finish.
        r = alice.get(session)
        assert r.status_code == 204 and r.headers["Range"] == "0-2", r.headers
        r = alice.put(session, params={"digest": sha256_digest(b"abcdef")}, content=b"def")
        assert r.status_code == 201, r.text
        assert alice.get(f"/v2/{repo}/blobs/{sha256_digest(b'abcdef')}").content == b"abcdef"
        # carol's own sessions work as ever.
        r = carol.post(f"/v2/{repo}/blobs/uploads/")
        assert carol.put(r.headers["Location"], params={"digest": sha256_digest(b"")}).is_success


# --- API keys carry their user's cells, and no more once the user is gone (issue 15) ---

KEYS = "/zot/auth/apikey"


def test_keys_follow_their_user_through_the_matrix(tmp_path: Path) -> None:
    """A key reads exactly what its user reads. Once the user is deleted from htpasswd,
    every cell of the key is refused with 401, on every repository and action, while
    other users' keys keep their cells. Who may list and revoke whose keys: a user their
    own, the admin anyone's, anonymous nobody's."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", PASSWORDS)
    config = write_config(
        tmp_path / "config.json",
        {
            "auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True},
            "accessControl": ACCESS_CONTROL,
        },
    )
    with serving(tmp_path / "data", config) as server:
        keys: dict[str, dict[str, str]] = {}
        for caller in ("alice", "bob", "carol"):
            with client_for(server, caller, PASSWORDS[caller]) as c:
                r = c.post(KEYS, json={"label": "matrix"})
                assert r.status_code == 201, r.text
                keys[caller] = r.json()
        with client_for(server, "admin", PASSWORDS["admin"]) as admin:
            for repo in REPOS:
                push_manifest(admin, repo, image_manifest(admin, repo), "v1")
            # The admin lists and revokes anyone's keys; a user only their own.
            listed = admin.get(KEYS, params={"user": "carol"}).json()["apiKeys"]
            assert [k["uuid"] for k in listed] == [keys["carol"]["uuid"]]
        with client_for(server, "alice", PASSWORDS["alice"]) as alice:
            assert_error(alice.get(KEYS, params={"user": "bob"}), 403, "DENIED")
        with client_for(server) as anonymous:
            assert_error(anonymous.get(KEYS), 401, "UNAUTHORIZED")

        def pulls(caller: str, key: str) -> dict[str, int]:
            with client_for(server, caller, key) as c:
                return {repo: get_manifest(c, repo, "v1").status_code for repo in REPOS}

        for caller in ("alice", "bob", "carol"):
            readable = {repo for repo, acts in EXPECTED[caller].items() if "read" in acts}
            got = pulls(caller, keys[caller]["apiKey"])
            assert {repo for repo, status in got.items() if status == 200} == readable
        done = subprocess.run(
            [sys.executable, "-m", "dockyard", "passwd", str(htpasswd), "bob", "--delete"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        with client_for(server, "bob", keys["bob"]["apiKey"]) as bob:
            for repo in REPOS:
                assert_error(get_manifest(bob, repo, "v1"), 401, "UNAUTHORIZED")
                assert_error(bob.post(f"/v2/{repo}/blobs/uploads/"), 401, "UNAUTHORIZED")
                assert_error(bob.delete(f"/v2/{repo}/manifests/v1"), 401, "UNAUTHORIZED")
            assert_error(bob.get(KEYS), 401, "UNAUTHORIZED")
        got = pulls("carol", keys["carol"]["apiKey"])
        assert {repo for repo, status in got.items() if status == 200} == {
            "public/app",
            "team/app",
            "shared/app",
        }
