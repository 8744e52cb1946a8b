"""Content discovery category of the distribution-spec: tag listing, the catalog, referrers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import Server
from spec_helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    Pushed,
    assert_error,
    image_manifest,
    index_manifest,
    next_link,
    push_image,
    push_manifest,
    tag_manifest,
    unknown_digest,
)

# lower-case only, so byte order and case-insensitive order agree
TAGS = ["v1.10", "alpha", "v1.2", "1.0", "beta", "latest", "v1-rc", "0", "zz"]
SORTED_TAGS = sorted(TAGS)


@pytest.fixture(scope="module")
def tagged(registry: Server) -> Iterator[tuple[httpx.Client, str]]:
    """A repository of the session registry carrying TAGS, all on one manifest."""
    repo = "discovery/tags"
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        tag_manifest(client, repo, push_image(client, repo), *TAGS)
        yield client, repo


def collect_pages(client: httpx.Client, url: str, key: str) -> list[list[str]]:
    """Follow Link rel=next from ``url``, returning each page's ``key`` list."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url:
        assert len(pages) < 50, "pagination does not terminate"
        resp = client.get(next_url)
        assert resp.status_code == 200, resp.text
        pages.append(list(resp.json()[key] or []))
        next_url = next_link(resp)
    return pages


# ---------------------------------------------------------------- tags


def test_tags_list_sorted(tagged: tuple[httpx.Client, str]) -> None:
    """tags/list: 200, {"name", "tags"} with every tag in lexical order, no Link."""
    client, repo = tagged
    resp = client.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200
    body = resp.json()
    assert body["name"] == repo
    assert body["tags"] == SORTED_TAGS
    assert next_link(resp) is None


@pytest.mark.parametrize("n", [1, 2, 4, 9])
def test_tags_list_n(tagged: tuple[httpx.Client, str], n: int) -> None:
    """?n=: first n tags in order, Link rel=next while more remain; links yield the rest."""
    client, repo = tagged
    resp = client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert resp.status_code == 200
    assert resp.json()["tags"] == SORTED_TAGS[:n]
    if n < len(TAGS):
        assert next_link(resp) is not None, resp.headers
    else:
        assert next_link(resp) is None
    pages = collect_pages(client, f"/v2/{repo}/tags/list?n={n}", "tags")
    assert [t for page in pages for t in page] == SORTED_TAGS
    assert all(len(page) == n for page in pages[:-1])


def test_tags_list_n_larger_than_total(tagged: tuple[httpx.Client, str]) -> None:
    """?n= above the number of tags: every tag, no Link."""
    client, repo = tagged
    resp = client.get(f"/v2/{repo}/tags/list", params={"n": 1000})
    assert resp.json()["tags"] == SORTED_TAGS
    assert next_link(resp) is None


def test_tags_list_last(tagged: tuple[httpx.Client, str]) -> None:
    """?last=: tags strictly after that tag, in order (n optional)."""
    client, repo = tagged
    last = SORTED_TAGS[3]
    resp = client.get(f"/v2/{repo}/tags/list", params={"last": last})
    assert resp.status_code == 200
    assert resp.json()["tags"] == SORTED_TAGS[4:]
    resp = client.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": last})
    assert resp.json()["tags"] == SORTED_TAGS[4:6]
    resp = client.get(f"/v2/{repo}/tags/list", params={"last": SORTED_TAGS[-1]})
    assert resp.status_code == 200
    assert (resp.json()["tags"] or []) == []


def test_tags_list_n_zero(tagged: tuple[httpx.Client, str]) -> None:
    """?n=0: an empty list and no Link header."""
    client, repo = tagged
    resp = client.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert resp.status_code == 200
    assert resp.json()["tags"] == []
    assert "Link" not in resp.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5"])
def test_tags_list_bad_n(tagged: tuple[httpx.Client, str], n: str) -> None:
    """?n= negative or not an integer: 400 PAGINATION_NUMBER_INVALID."""
    client, repo = tagged
    resp = client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert_error(resp, 400, "PAGINATION_NUMBER_INVALID")


def test_tags_list_unknown_repo(client: httpx.Client, repo: str) -> None:
    """tags/list of a repository that does not exist: 404 NAME_UNKNOWN."""
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")


# ---------------------------------------------------------------- catalog

REPOS = ["zulu", "alpha/one", "beta", "alpha", "gamma/delta/eps", "beta-2", "a0"]
SORTED_REPOS = sorted(REPOS)


@pytest.fixture
def catalog(fresh_registry: Server) -> Iterator[httpx.Client]:
    """A fresh registry holding exactly the repositories REPOS."""
    with httpx.Client(base_url=fresh_registry.url, timeout=30) as client:
        for name in REPOS:
            push_image(client, name, "v1", layers=0)
        yield client


def test_catalog(catalog: httpx.Client) -> None:
    """/v2/_catalog: repositories in lexical order; n, last, n=0 and Link as tags/list."""
    resp = catalog.get("/v2/_catalog")
    assert resp.status_code == 200
    assert resp.json()["repositories"] == SORTED_REPOS
    assert next_link(resp) is None

    resp = catalog.get("/v2/_catalog", params={"n": 3})
    assert resp.json()["repositories"] == SORTED_REPOS[:3]
    assert next_link(resp) is not None
    pages = collect_pages(catalog, "/v2/_catalog?n=3", "repositories")
    assert [r for page in pages for r in page] == SORTED_REPOS
    assert all(len(page) == 3 for page in pages[:-1])

    resp = catalog.get("/v2/_catalog", params={"n": 2, "last": SORTED_REPOS[2]})
    assert resp.json()["repositories"] == SORTED_REPOS[3:5]
    resp = catalog.get("/v2/_catalog", params={"last": SORTED_REPOS[2]})
    assert resp.json()["repositories"] == SORTED_REPOS[3:]

    resp = catalog.get("/v2/_catalog", params={"n": 0})
    assert resp.status_code == 200
    assert resp.json()["repositories"] == []
    assert "Link" not in resp.headers

    for bad in ("-1", "abc"):
        assert_error(
            catalog.get("/v2/_catalog", params={"n": bad}), 400, "PAGINATION_NUMBER_INVALID"
        )


# ---------------------------------------------------------------- referrers

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"
CFG = "application/vnd.example.config.v1+json"


def referrers(
    client: httpx.Client, repo: str, digest: str, artifact_type: str | None = None
) -> httpx.Response:
    params = {"artifactType": artifact_type} if artifact_type else None
    resp = client.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    assert isinstance(body["manifests"], list)
    return resp


def test_referrers_content_type(client: httpx.Client, repo: str) -> None:
    """The referrers response's Content-Type is exactly the OCI image index media type."""
    subject = push_image(client, repo, "v1")
    push_image(client, repo, artifact_type=SBOM, subject=subject.descriptor())
    for digest in (subject.digest, unknown_digest()):
        resp = referrers(client, repo, digest)
        assert resp.headers["Content-Type"] == OCI_INDEX


def by_digest(resp: httpx.Response) -> dict[str, dict[str, object]]:
    return {m["digest"]: m for m in resp.json()["manifests"]}


@pytest.fixture
def referred(client: httpx.Client, repo: str) -> dict[str, Pushed]:
    """A subject image plus an SBOM, a signature, an artifact without artifactType and an
    index, all pointing at it by subject."""
    subject = push_image(client, repo, "v1")
    desc = subject.descriptor()
    sbom_notes = {"org.example.sbom.format": "json", "org.opencontainers.image.created": "x"}
    sbom = push_image(client, repo, artifact_type=SBOM, subject=desc, annotations=sbom_notes)
    sig = push_image(client, repo, artifact_type=SIG, subject=desc, annotations={"k": "v"})
    plain = push_image(client, repo, config_media_type=CFG, subject=desc)
    child = push_image(client, repo)
    index = push_manifest(
        client, repo, index_manifest([child], subject=desc, annotations={"idx": "1"})
    )
    return {"subject": subject, "sbom": sbom, "sig": sig, "plain": plain, "index": index}


def test_referrers_list(client: httpx.Client, repo: str, referred: dict[str, Pushed]) -> None:
    """referrers/<digest>: descriptors of every manifest whose subject is the digest."""
    resp = referrers(client, repo, referred["subject"].digest)
    listed = by_digest(resp)
    expected = {referred[k].digest for k in ("sbom", "sig", "plain", "index")}
    assert set(listed) == expected
    assert len(resp.json()["manifests"]) == 4

    sbom = listed[referred["sbom"].digest]
    assert sbom["mediaType"] == OCI_MANIFEST
    assert sbom["size"] == referred["sbom"].size
    assert sbom["artifactType"] == SBOM
    assert sbom["annotations"] == {
        "org.example.sbom.format": "json",
        "org.opencontainers.image.created": "x",
    }
    assert listed[referred["sig"].digest]["artifactType"] == SIG
    assert listed[referred["sig"].digest]["annotations"] == {"k": "v"}


def test_referrers_artifact_type_falls_back_to_config(
    client: httpx.Client, repo: str, referred: dict[str, Pushed]
) -> None:
    """An image manifest without artifactType is listed with its config mediaType."""
    listed = by_digest(referrers(client, repo, referred["subject"].digest))
    plain = listed[referred["plain"].digest]
    assert plain["artifactType"] == CFG
    assert plain["size"] == referred["plain"].size


def test_referrers_index_listed(
    client: httpx.Client, repo: str, referred: dict[str, Pushed]
) -> None:
    """An image index with a subject is a referrer; without artifactType it has none."""
    listed = by_digest(referrers(client, repo, referred["subject"].digest))
    index = listed[referred["index"].digest]
    assert index["mediaType"] == OCI_INDEX
    assert index["size"] == referred["index"].size
    assert index["annotations"] == {"idx": "1"}
    assert "artifactType" not in index


def test_referrers_filter(client: httpx.Client, repo: str, referred: dict[str, Pushed]) -> None:
    """?artifactType= returns only matching referrers and sets OCI-Filters-Applied."""
    resp = referrers(client, repo, referred["subject"].digest, artifact_type=SBOM)
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert list(by_digest(resp)) == [referred["sbom"].digest]
    resp = referrers(client, repo, referred["subject"].digest, artifact_type="application/none")
    assert resp.headers["OCI-Filters-Applied"] == "artifactType"
    assert resp.json()["manifests"] == []
    unfiltered = referrers(client, repo, referred["subject"].digest)
    assert "OCI-Filters-Applied" not in unfiltered.headers


def test_referrers_none(client: httpx.Client, repo: str, referred: dict[str, Pushed]) -> None:
    """A digest with no referrers (pushed or not): 200 and an empty manifests list."""
    assert referrers(client, repo, referred["sbom"].digest).json()["manifests"] == []
    assert referrers(client, repo, unknown_digest()).json()["manifests"] == []


def test_referrers_subject_pushed_later(client: httpx.Client, repo: str) -> None:
    """A referrer pushed before its subject is listed once the subject exists (and before)."""
    subject = image_manifest(client, repo)
    ref = push_image(client, repo, artifact_type=SBOM, subject=subject.descriptor())
    assert set(by_digest(referrers(client, repo, subject.digest))) == {ref.digest}
    push_manifest(client, repo, subject, "v1")
    assert set(by_digest(referrers(client, repo, subject.digest))) == {ref.digest}


def test_referrers_scoped_to_repository(
    client: httpx.Client, repo: str, referred: dict[str, Pushed]
) -> None:
    """A manifest in another repository with the same subject digest is not listed."""
    other = f"{repo}-other"
    stranger = push_image(
        client, other, artifact_type=SBOM, subject=referred["subject"].descriptor()
    )
    listed = by_digest(referrers(client, repo, referred["subject"].digest))
    assert stranger.digest not in listed
    assert set(by_digest(referrers(client, other, referred["subject"].digest))) == {stranger.digest}


def test_referrers_after_delete(
    client: httpx.Client, repo: str, referred: dict[str, Pushed]
) -> None:
    """Deleting a referrer manifest removes it from the referrers list."""
    resp = client.delete(f"/v2/{repo}/manifests/{referred['sig'].digest}")
    assert resp.status_code == 202, resp.text
    listed = by_digest(referrers(client, repo, referred["subject"].digest))
    assert referred["sig"].digest not in listed
    assert referred["sbom"].digest in listed


@pytest.mark.parametrize(
    "digest", ["sha256:xyz", "sha256:" + "a" * 63, "md5:d41d8cd98f00b204e9800998ecf8427e"]
)
def test_referrers_bad_digest(client: httpx.Client, repo: str, digest: str) -> None:
    """referrers/<digest> with a malformed digest: 400 DIGEST_INVALID."""
    push_image(client, repo, "v1")
    assert_error(client.get(f"/v2/{repo}/referrers/{digest}"), 400, "DIGEST_INVALID")
