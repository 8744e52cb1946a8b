"""The search API (zot's GraphQL at /v2/_zot/ext/search) against pushed content.

Images go in through real clients (skopeo for OCI layouts, httpx for hand-made manifests
and referrers); every answer is compared with what was pushed: digests, sizes, layers,
platforms, history, annotations byte for byte (never HTML-escaped). The index must follow
pushes and deletes at once, come back from an existing store at start-up, and never show
a repository the caller may not read, in results or in counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import client_for, serving, write_htpasswd
from bearer_helpers import SERVICE, signing_key
from clients_helpers import Skopeo
from conftest import Server, start_server
from images import build_image, build_index, read_blob
from search_helpers import (
    SEARCH,
    gql,
    gql_raw,
    push_referrer,
    push_rich_image,
    search_config,
)
from spec_helpers import assert_error, sha256_digest
from token_server import claims_for, sign

SBOM = "application/vnd.example.sbom.v1+json"
COSIGN = "application/vnd.dev.cosign.artifact.sig.v1+json"
XSS = "<img src=x onerror=\"document.title='pwned'\"> &amp; </script>"

IMAGE_FIELDS = """
  RepoName Tag Digest MediaType Size IsSigned IsDeletable ArtifactType Description
  Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } }
  Manifests { Digest ConfigDigest Size Platform { Os Arch }
    Layers { Digest Size }
    History { Layer { Digest Size } HistoryDescription { CreatedBy EmptyLayer } } }
"""


@pytest.fixture
def search_server(tmp_path: Path) -> Iterator[Server]:
    config = search_config(tmp_path / "config.json")
    server = start_server(tmp_path / "data", config=config)
    yield server
    server.stop()


@pytest.fixture
def client(search_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=search_server.url, timeout=30) as c:
        yield c


def _layers(n: int) -> list[bytes]:
    return [os.urandom(100 + 37 * i) for i in range(n)]


def test_search_is_off_unless_configured(registry: Server) -> None:
    """As in zot: no ``extensions.search`` section, no search endpoint."""
    resp = httpx.post(
        f"{registry.url}{SEARCH}", json={"query": '{ ImageList(repo:"") { Page { TotalCount } } }'}
    )
    assert resp.status_code == 404


def test_ui_without_search_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"extensions": {"ui": {"enable": True}}}))
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "verify", str(config)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "extensions" in proc.stderr and "search" in proc.stderr


def test_skopeo_pushed_images_match_the_answers(
    search_server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    """An image and a multi-platform index pushed by skopeo come back as pushed."""
    skopeo = Skopeo(tmp_path / "skopeo")
    single = build_image(tmp_path / "single", "v1", layers=3)
    skopeo.push(single.layout, "v1", f"{search_server.host}/apps/single:v1")
    multi = build_index(
        tmp_path / "multi", "v2", platforms=(("linux", "amd64"), ("linux", "arm64"))
    )
    skopeo.push(multi.layout, "v2", f"{search_server.host}/apps/multi:v2", all_images=True)

    image = gql(
        client,
        f"query($i: String!) {{ Image(image: $i) {{ {IMAGE_FIELDS} }} }}",
        i="apps/single:v1",
    )["Image"]
    assert image["RepoName"] == "apps/single" and image["Tag"] == "v1"
    assert image["Digest"] == single.manifest_digest
    expected_size = single.manifest.size + single.config.size + sum(x.size for x in single.layers)
    assert image["Size"] == str(expected_size)
    [manifest] = image["Manifests"]
    assert manifest["ConfigDigest"] == single.config.digest
    assert manifest["Platform"] == {"Os": "linux", "Arch": "amd64"}
    assert manifest["Layers"] == [{"Digest": x.digest, "Size": str(x.size)} for x in single.layers]
    config = json.loads(read_blob(single.layout, single.config.digest))
    assert [h["HistoryDescription"]["CreatedBy"] for h in manifest["History"]] == [
        h["created_by"] for h in config["history"]
    ]
    assert [h["Layer"]["Digest"] for h in manifest["History"]] == single.layer_digests
    assert image["IsDeletable"] is True and image["IsSigned"] is False

    index = gql(client, f'{{ Image(image: "apps/multi:v2") {{ {IMAGE_FIELDS} }} }}')["Image"]
    assert index["Digest"] == multi.index_digest
    assert index["MediaType"] == "application/vnd.oci.image.index.v1+json"
    by_platform = {f"{m['Platform']['Os']}/{m['Platform']['Arch']}": m for m in index["Manifests"]}
    assert set(by_platform) == set(multi.children)
    for platform, child in multi.children.items():
        assert by_platform[platform]["Digest"] == child.manifest_digest
        assert [x["Digest"] for x in by_platform[platform]["Layers"]] == child.layer_digests

    info = gql(
        client,
        '{ ExpandedRepoInfo(repo: "apps/multi") { Summary { Name Size Platforms { Os Arch } }'
        " Images { Tag Digest } } }",
    )["ExpandedRepoInfo"]
    assert info["Images"] == [{"Tag": "v2", "Digest": multi.index_digest}]
    assert {(p["Os"], p["Arch"]) for p in info["Summary"]["Platforms"]} == {
        ("linux", "amd64"),
        ("linux", "arm64"),
    }
    # The repository's size counts every blob once: the index, each child's manifest,
    # config and layers, exactly as stored.
    blobs = {d: len(read_blob(multi.layout, d)) for d in multi.blob_digests}
    assert info["Summary"]["Size"] == str(sum(blobs.values()))


def test_referrers_and_annotations_come_back_exactly_as_pushed(client: httpx.Client) -> None:
    repo = f"refs/{uuid.uuid4().hex[:8]}"
    pushed = push_rich_image(
        client, repo, "1", _layers(2), annotations={"org.opencontainers.image.description": XSS}
    )
    subject = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": pushed["digest"],
        "size": len(pushed["body"]),
    }
    sbom = push_referrer(client, repo, subject, SBOM, {"org.example.note": XSS})

    got = gql(
        client,
        "query($r: String!, $d: String!) { Referrers(repo: $r, digest: $d) "
        "{ MediaType ArtifactType Size Digest Annotations { Key Value } } }",
        r=repo,
        d=pushed["digest"],
    )["Referrers"]
    assert got == [
        {
            "MediaType": "application/vnd.oci.image.manifest.v1+json",
            "ArtifactType": SBOM,
            "Size": sbom["size"],
            "Digest": sbom["digest"],
            "Annotations": [{"Key": "org.example.note", "Value": XSS}],
        }
    ]
    filtered = gql(
        client,
        "query($r: String!, $d: String!) "
        '{ Referrers(repo: $r, digest: $d, type: ["x/none"]) { Digest } }',
        r=repo,
        d=pushed["digest"],
    )
    assert filtered["Referrers"] == []

    image = gql(client, f'{{ Image(image: "{repo}:1") {{ {IMAGE_FIELDS} }} }}')["Image"]
    assert image["Description"] == XSS  # raw, not escaped: escaping is the renderer's job
    assert [r["Digest"] for r in image["Referrers"]] == [sbom["digest"]]
    assert image["IsSigned"] is False
    push_referrer(client, repo, subject, COSIGN)
    signed = gql(client, f'{{ Image(image: "{repo}:1") {{ IsSigned SignatureInfo {{ Tool }} }} }}')
    assert signed["Image"]["IsSigned"] is True
    assert signed["Image"]["SignatureInfo"] == [{"Tool": "cosign"}]
    # The raw bytes on the wire carry the characters themselves, not \u003c escapes or &lt;.
    raw = gql_raw(client, f'{{ Image(image: "{repo}:1") {{ Description }} }}')
    assert "<img src=x" in raw.text and "&lt;" not in raw.text


def test_index_follows_pushes_and_deletes(client: httpx.Client) -> None:
    repo = f"live/{uuid.uuid4().hex[:8]}"
    query = f'{{ ExpandedRepoInfo(repo: "{repo}") {{ Images {{ Tag Digest }} }} }}'
    first = push_rich_image(client, repo, "a", _layers(1))
    assert gql(client, query)["ExpandedRepoInfo"]["Images"] == [
        {"Tag": "a", "Digest": first["digest"]}
    ]
    second = push_rich_image(client, repo, "b", _layers(1))
    push_rich_image(client, repo, "a", _layers(1))  # moves tag a
    images = gql(client, query)["ExpandedRepoInfo"]["Images"]
    assert [i["Tag"] for i in images] == ["a", "b"]
    assert images[0]["Digest"] != first["digest"]
    assert client.delete(f"/v2/{repo}/manifests/a").status_code == 202
    assert gql(client, query)["ExpandedRepoInfo"]["Images"] == [
        {"Tag": "b", "Digest": second["digest"]}
    ]
    assert client.delete(f"/v2/{repo}/manifests/{second['digest']}").status_code == 202
    assert gql(client, query)["ExpandedRepoInfo"]["Images"] == []
    found = gql(client, f'{{ GlobalSearch(query: "{repo}") {{ Repos {{ Name }} }} }}')
    assert found["GlobalSearch"]["Repos"] == []  # no tags left: not listed, as in zot


def test_index_is_built_at_start_from_an_existing_store(tmp_path: Path) -> None:
    config = search_config(tmp_path / "config.json")
    server = start_server(tmp_path / "data", config=config)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            pushed = push_rich_image(c, "kept/app", "1", _layers(2))
    finally:
        server.stop()
    again = start_server(tmp_path / "data", config=config)
    try:
        with httpx.Client(base_url=again.url, timeout=30) as c:
            image = gql(c, '{ Image(image: "kept/app:1") { Digest Size } }')["Image"]
    finally:
        again.stop()
    assert image == {"Digest": pushed["digest"], "Size": str(pushed["size"])}


def test_global_search_ranks_sorts_and_pages(client: httpx.Client) -> None:
    ns = uuid.uuid4().hex[:6]
    names = [f"{ns}/alpha", f"{ns}/beta", f"{ns}/alphabet", f"x{ns}/gamma"]
    sizes = {}
    for i, name in enumerate(names):
        sizes[name] = push_rich_image(client, name, "1.0", _layers(i + 1))["size"]
    push_rich_image(client, f"{ns}/beta", "1.1", _layers(1))
    push_rich_image(client, f"{ns}/beta", "2.0", _layers(1))

    def search(q: str, page: dict[str, object] | None = None) -> dict[str, object]:
        return gql(
            client,
            "query($q: String!, $p: PageInput) { GlobalSearch(query: $q, requestedPage: $p) "
            "{ Page { TotalCount ItemCount } Repos { Name Size } Images { RepoName Tag } } }",
            q=q,
            p=page,
        )["GlobalSearch"]

    exact = search(f"{ns}/alpha")
    assert [r["Name"] for r in exact["Repos"]][:2] == [f"{ns}/alpha", f"{ns}/alphabet"]
    everything = search(ns, {"sortBy": "ALPHABETIC_ASC"})
    assert [r["Name"] for r in everything["Repos"]] == sorted(names)
    assert everything["Page"] == {"TotalCount": 4, "ItemCount": 4}
    by_size = search(ns, {"sortBy": "SIZE"})
    assert [int(r["Size"]) for r in by_size["Repos"]] == sorted(
        (int(r["Size"]) for r in by_size["Repos"]), reverse=True
    )
    page2 = search(ns, {"limit": 3, "offset": 3, "sortBy": "ALPHABETIC_ASC"})
    assert page2["Page"] == {"TotalCount": 4, "ItemCount": 1}
    assert [r["Name"] for r in page2["Repos"]] == [sorted(names)[3]]
    newest = search(ns, {"limit": 1, "sortBy": "UPDATE_TIME"})
    assert [r["Name"] for r in newest["Repos"]] == [f"{ns}/beta"]  # pushed last
    tags = search(f"{ns}/beta:1")
    assert sorted(i["Tag"] for i in tags["Images"]) == ["1.0", "1.1"]
    bad = gql_raw(
        client, '{ GlobalSearch(query: "x", requestedPage: {limit: -1}) { Page { TotalCount } } }'
    )
    assert bad.status_code == 200 and "negative" in bad.json()["errors"][0]["message"]

    listed = gql(
        client,
        "{ RepoListWithNewestImage(requestedPage: {limit: 100000}) "
        "{ Page { TotalCount } Results { Name NewestImage { Tag } } } }",
    )["RepoListWithNewestImage"]
    newest_tags = {r["Name"]: r["NewestImage"]["Tag"] for r in listed["Results"]}
    assert newest_tags[f"{ns}/beta"] == "2.0"
    images = gql(
        client, f'{{ ImageList(repo: "{ns}/beta") {{ Page {{ TotalCount }} Results {{ Tag }} }} }}'
    )
    assert [r["Tag"] for r in images["ImageList"]["Results"]] == ["1.0", "1.1", "2.0"]


def test_digest_base_and_derived_queries(client: httpx.Client) -> None:
    ns = uuid.uuid4().hex[:6]
    shared = _layers(2)
    extra = os.urandom(300)
    base = push_rich_image(client, f"{ns}/base", "1", shared)
    derived = push_rich_image(client, f"{ns}/derived", "1", [*shared, extra])
    other = push_rich_image(client, f"{ns}/other", "1", _layers(1))

    def names(field: str, arg: str) -> list[str]:
        data = gql(client, f"{{ {field}({arg}) {{ Results {{ RepoName Tag }} }} }}")
        return sorted(f"{r['RepoName']}:{r['Tag']}" for r in data[field]["Results"])

    assert names("BaseImageList", f'image: "{ns}/derived:1"') == [f"{ns}/base:1"]
    assert names("DerivedImageList", f'image: "{ns}/base:1"') == [f"{ns}/derived:1"]
    assert names("ImageListForDigest", f'id: "{sha256_digest(shared[0])}"') == [
        f"{ns}/base:1",
        f"{ns}/derived:1",
    ]
    assert names("ImageListForDigest", f'id: "{sha256_digest(extra)}"') == [f"{ns}/derived:1"]
    assert names("ImageListForDigest", f'id: "{other["config_digest"]}"') == [f"{ns}/other:1"]
    assert names("ImageListForDigest", f'id: "{base["digest"]}"') == [f"{ns}/base:1"]
    assert derived["digest"] != base["digest"]


def test_bad_requests_get_error_bodies(client: httpx.Client) -> None:
    not_json = client.post(SEARCH, content=b"{nope", headers={"Content-Type": "application/json"})
    assert_error(not_json, 400, "BAD_REQUEST")
    no_query = client.post(SEARCH, json={"variables": {}})
    assert_error(no_query, 400, "BAD_REQUEST")
    too_big = client.post(SEARCH, json={"query": "{" + " " * (300 * 1024) + "}"})
    assert_error(too_big, 413, "SIZE_INVALID")
    invalid = client.post(SEARCH, json={"query": "{ NoSuchQuery { x } }"})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["message"]
    unparsable = client.get(SEARCH, params={"query": "{ ImageList(repo: "})
    assert unparsable.status_code == 422
    ok = client.get(SEARCH, params={"query": '{ ImageList(repo: "") { Page { TotalCount } } }'})
    assert ok.status_code == 200 and ok.json()["data"]["ImageList"]["Page"]["TotalCount"] >= 0
    missing = gql_raw(client, '{ Image(image: "no/such:tag") { Digest } }')
    assert missing.status_code == 200 and missing.json()["data"] is None
    assert "not found" in missing.json()["errors"][0]["message"]


PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "admin": "admin-pw"}
ACCESS = {
    "repositories": {
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"]},
        "alice/**": {"policies": [{"users": ["alice"], "actions": ["read", "create", "delete"]}]},
        "bob/**": {"policies": [{"users": ["bob"], "actions": ["read", "create"]}]},
    },
    "adminPolicy": {"users": ["admin"], "actions": ["read", "create", "update", "delete"]},
}


def test_search_respects_access_control(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", PASSWORDS)
    http = {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS}
    config = search_config(tmp_path / "config.json", http)
    with serving(tmp_path / "data", config) as server:
        shared = _layers(1)
        with client_for(server, "admin", "admin-pw") as admin:
            for repo in ("public/app", "alice/app", "alice/tool", "bob/app"):
                push_rich_image(admin, repo, "1", shared)
        count = '{ GlobalSearch(query: "") { Page { TotalCount } Repos { Name } } }'
        digest_q = '{ ImageListForDigest(id: "%s") { Page { TotalCount } Results { RepoName } } }'
        expected = {
            None: ["public/app"],
            "alice": ["alice/app", "alice/tool", "public/app"],
            "bob": ["bob/app", "public/app"],
            "admin": ["alice/app", "alice/tool", "bob/app", "public/app"],
        }
        for user, repos in expected.items():
            with client_for(server, user, PASSWORDS.get(user or "", "")) as c:
                found = gql(c, count)["GlobalSearch"]
                assert sorted(r["Name"] for r in found["Repos"]) == repos, user
                assert found["Page"]["TotalCount"] == len(repos), user
                by_digest = gql(c, digest_q % sha256_digest(shared[0]))["ImageListForDigest"]
                assert sorted(r["RepoName"] for r in by_digest["Results"]) == repos, user
                assert by_digest["Page"]["TotalCount"] == len(repos), user
                listed = gql(c, "{ RepoListWithNewestImage { Page { TotalCount } } }")
                assert listed["RepoListWithNewestImage"]["Page"]["TotalCount"] == len(repos)
        with client_for(server, "bob", "bob-pw") as bob:
            hidden = gql_raw(bob, '{ Image(image: "alice/app:1") { Digest } }').json()
            assert hidden["data"] is None and "not found" in hidden["errors"][0]["message"]
            info = gql(
                bob, '{ ExpandedRepoInfo(repo: "alice/app") { Images { Tag } Summary { Name } } }'
            )
            assert info["ExpandedRepoInfo"] == {"Images": None, "Summary": None}
            own = gql(bob, '{ Image(image: "bob/app:1") { IsDeletable } }')
            assert own["Image"]["IsDeletable"] is False  # bob may not delete
        with client_for(server, "alice", "alice-pw") as alice:
            mine = gql(alice, '{ Image(image: "alice/app:1") { IsDeletable } }')
            assert mine["Image"]["IsDeletable"] is True
            public = gql(alice, '{ Image(image: "public/app:1") { IsDeletable } }')
            assert public["Image"]["IsDeletable"] is False
        with client_for(server, "alice", "wrong") as liar:
            assert liar.post(SEARCH, json={"query": count}).status_code == 401


def test_search_needs_a_login_when_anonymous_may_read_nothing(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "alice-pw"})
    config = search_config(
        tmp_path / "config.json", {"auth": {"htpasswd": {"path": str(htpasswd)}}}
    )
    with serving(tmp_path / "data", config) as server, client_for(server) as anonymous:
        resp = anonymous.post(
            SEARCH, json={"query": '{ ImageList(repo: "") { Page { TotalCount } } }'}
        )
        assert_error(resp, 401, "UNAUTHORIZED")
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_index_follows_garbage_collection(tmp_path: Path) -> None:
    """A manifest GC removes (untagged, past retention) leaves the repository's size."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "storage": {"gcDelay": "1s", "gcInterval": "1s", "retention": {"delay": "1s"}},
                "extensions": {"search": {"enable": True}},
            }
        )
    )
    with serving(tmp_path / "data", config) as server, client_for(server) as c:
        old = push_rich_image(c, "gc/app", "a", [os.urandom(5000)])
        new = push_rich_image(c, "gc/app", "a", [os.urandom(100)])  # old is untagged now
        size = '{ ExpandedRepoInfo(repo: "gc/app") { Summary { Size } } }'
        first = gql(c, size)["ExpandedRepoInfo"]["Summary"]["Size"]
        assert int(first) == old["size"] + new["size"]  # both still listed
        deadline = time.monotonic() + 20
        while c.get(f"/v2/gc/app/manifests/{old['digest']}").status_code != 404:
            assert time.monotonic() < deadline, "GC never removed the untagged manifest"
            time.sleep(0.2)
        assert gql(c, size)["ExpandedRepoInfo"]["Summary"]["Size"] == str(new["size"])


def test_search_and_metrics_both_observe_storage(tmp_path: Path) -> None:
    """Two observers of the same roots: the index updates and the metrics still count."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"extensions": {"search": {"enable": True}, "metrics": {"enable": True}}})
    )
    with serving(tmp_path / "data", config) as server, client_for(server) as c:
        pushed = push_rich_image(c, "both/app", "1", _layers(1))
        image = gql(c, '{ Image(image: "both/app:1") { Digest } }')["Image"]
        assert image["Digest"] == pushed["digest"]
        metrics = c.get("/metrics").text
        waits = [
            line
            for line in metrics.splitlines()
            if line.startswith("dockyard_lock_wait_seconds_count")
        ]
        assert waits and float(waits[0].split()[-1]) >= 1, waits


def test_zot_cli_discovery_and_introspection(client: httpx.Client) -> None:
    """zot's CLI finds search in the extension list, then checks the schema's queries."""
    listed = client.get("/v2/_oci/ext/discover")
    assert listed.status_code == 200
    [extension] = listed.json()["extensions"]
    assert extension["name"] == "_zot" and SEARCH in extension["endpoints"]
    schema = gql(
        client,
        "{ __schema { queryType { fields { name args { name } type { name kind } } } } }",
    )["__schema"]["queryType"]["fields"]
    args = {f["name"]: [a["name"] for a in f["args"]] for f in schema}
    # zot's names and argument order (its CLI compares both).
    assert args["GlobalSearch"] == ["query", "filter", "requestedPage"]
    assert args["ImageList"] == ["repo", "requestedPage"]
    assert args["ExpandedRepoInfo"] == ["repo"]
    assert args["Image"] == ["image"]
    assert args["Referrers"] == ["repo", "digest", "type"]
    assert args["ImageListForDigest"] == ["id", "requestedPage"]
    assert args["DerivedImageList"] == ["image", "digest", "requestedPage"]
    assert args["BaseImageList"] == ["image", "digest", "requestedPage"]
    assert args["RepoListWithNewestImage"] == ["requestedPage"]
    returns = {f["name"]: f["type"] for f in schema}
    assert returns["ImageList"] == {"name": None, "kind": "NON_NULL"}


def test_oras_artifacts_and_their_referrers(
    search_server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    """An artifact pushed with the oras SDK, and an SBOM attached to it, as search sees them."""
    import oras.oci
    import oras.provider

    oras_client = oras.provider.Registry(hostname=search_server.host, insecure=True)
    repo = f"oras/{uuid.uuid4().hex[:8]}"
    doc = tmp_path / "readme.md"
    doc.write_bytes(os.urandom(1000))
    oras_client.push(
        f"{search_server.host}/{repo}:docs", files=[str(doc)], disable_path_validation=True
    )
    base = client.get(
        f"/v2/{repo}/manifests/docs",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).content
    subject = oras.oci.Subject(
        mediaType="application/vnd.oci.image.manifest.v1+json",
        digest=sha256_digest(base),
        size=len(base),
    )
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"packages": []}))
    config = tmp_path / "config.json"
    config.write_text("{}")
    resp = oras_client.push(
        f"{search_server.host}/{repo}:sbom",
        files=[f"{sbom}:application/json"],
        manifest_config=f"{config}:{SBOM}",
        manifest_annotations={"org.example.tool": "<syft>"},
        subject=subject,
        disable_path_validation=True,
    )
    assert resp.status_code == 201, resp.text
    image = gql(
        client,
        f'{{ Image(image: "{repo}:docs") {{ Digest Size ArtifactType'
        " Manifests { Layers { Size } }"
        " Referrers { ArtifactType Digest Annotations { Key Value } } } }",
    )["Image"]
    assert image["Digest"] == sha256_digest(base)
    assert image["Manifests"][0]["Layers"] == [{"Size": str(doc.stat().st_size)}]
    [referrer] = image["Referrers"]
    sbom_manifest = client.get(
        f"/v2/{repo}/manifests/sbom",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).content
    assert referrer["Digest"] == sha256_digest(sbom_manifest)
    assert referrer["ArtifactType"] == SBOM  # the config media type stands for it
    assert {"Key": "org.example.tool", "Value": "<syft>"} in referrer["Annotations"]


def test_search_with_bearer_tokens_follows_their_grants(tmp_path: Path) -> None:
    """With a token server, the token's repository grants decide what search shows."""
    key_path, cert_path = signing_key(tmp_path, "signer")
    key = key_path.read_bytes()
    bearer = {"realm": "http://127.0.0.1:1/token", "service": SERVICE, "cert": str(cert_path)}
    config = search_config(tmp_path / "config.json", {"auth": {"bearer": bearer}}, ui=False)

    def client(server: Server, grants: dict[str, list[str]]) -> httpx.Client:
        access = [{"type": "repository", "name": n, "actions": a} for n, a in grants.items()]
        token = sign(key, claims_for(SERVICE, "someone", access))
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=server.url, headers=headers, timeout=30)

    with serving(tmp_path / "data", config) as server:
        with client(server, {r: ["pull", "push"] for r in ("tok/a", "tok/b")}) as pusher:
            for repo in ("tok/a", "tok/b"):
                push_rich_image(pusher, repo, "1", _layers(1))
        query = '{ GlobalSearch(query: "tok") { Page { TotalCount } Repos { Name } } }'
        with client(server, {"tok/a": ["pull"]}) as reader:
            found = gql(reader, query)["GlobalSearch"]
            assert [r["Name"] for r in found["Repos"]] == ["tok/a"]
            assert found["Page"]["TotalCount"] == 1
        anonymous = httpx.post(server.url + SEARCH, json={"query": query})
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer ")
