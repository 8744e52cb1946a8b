"""Manifest parsing: what a manifest PUT accepts, and what it refuses before storage sees it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.oci.digest import Digest
from dockyard.oci.manifest import MAX_MANIFEST_BYTES, InvalidManifest, parse_manifest
from dockyard.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN_TYPE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
A, B, C = ("sha256:" + ch * 64 for ch in "abc")


def d(digest: str = A, media_type: str = LAYER_TYPE, size: object = 1, **more: Any) -> Any:
    return {"mediaType": media_type, "digest": digest, "size": size, **more}


def image(**fields: Any) -> dict[str, Any]:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": d(A, CONFIG_TYPE, 2),
        "layers": [d(B, size=3)],
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


def index(**fields: Any) -> dict[str, Any]:
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d(C, OCI_MANIFEST, 9)]}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


def parse(doc: Any, content_type: str | None = None) -> Any:
    return parse_manifest(json.dumps(doc).encode(), content_type)


def test_an_image_lists_its_config_then_its_layers() -> None:
    m = parse(image(), OCI_MANIFEST)
    assert m.media_type == OCI_MANIFEST
    assert [(str(b.digest), b.size) for b in m.blobs] == [(A, 2), (B, 3)]
    assert m.manifests == ()
    assert m.artifact_type == CONFIG_TYPE  # what the referrers API reports without one
    assert m.subject is None and m.annotations == {}


def test_an_explicit_artifact_type_wins_over_the_configs() -> None:
    assert parse(image(artifactType="application/x.sbom")).artifact_type == "application/x.sbom"


def test_an_index_lists_its_manifests() -> None:
    m = parse(index(), OCI_INDEX)
    assert m.blobs == ()
    assert [str(x.digest) for x in m.manifests] == [C]


def test_the_subject_and_annotations_are_kept() -> None:
    m = parse(image(subject=d(C, OCI_MANIFEST, 9), annotations={"k": "v"}))
    assert m.subject is not None and m.subject.digest == Digest.parse(C)
    assert m.annotations == {"k": "v"}
    assert parse(image(subject=None)).subject is None


@pytest.mark.parametrize(
    ("doc", "content_type", "media_type"),
    [
        (image(mediaType=...), OCI_MANIFEST, OCI_MANIFEST),
        (image(mediaType=...), f"{OCI_MANIFEST}; charset=utf-8", OCI_MANIFEST),
        (image(mediaType=...), None, OCI_MANIFEST),  # inferred from config/layers
        (image(mediaType=...), "", OCI_MANIFEST),
        (index(mediaType=...), None, OCI_INDEX),  # inferred from manifests
        (image(), None, OCI_MANIFEST),  # declared, no Content-Type
        (image(mediaType=DOCKER_MANIFEST), DOCKER_MANIFEST, DOCKER_MANIFEST),
        (index(mediaType=DOCKER_MANIFEST_LIST), None, DOCKER_MANIFEST_LIST),
    ],
)
def test_the_media_type_comes_from_the_body_the_header_or_the_shape(
    doc: dict[str, Any], content_type: str | None, media_type: str
) -> None:
    assert parse(doc, content_type).media_type == media_type


def test_an_oci_image_may_have_no_layers_but_a_docker_one_may_not() -> None:
    """OCI artifacts carry only a config; Docker's schema requires ``layers``."""
    assert len(parse(image(layers=...)).blobs) == 1
    with pytest.raises(InvalidManifest, match="layers must be a list"):
        parse(image(mediaType=DOCKER_MANIFEST, layers=...))


def test_foreign_layers_are_only_those_with_urls() -> None:
    m = parse(image(layers=[d(B, FOREIGN_TYPE, urls=["https://x/y"]), d(C, FOREIGN_TYPE)]))
    assert [b.foreign for b in m.blobs] == [False, True, False]
    assert m.blobs[1].urls == ("https://x/y",)


REFUSED: list[tuple[Any, str | None, str]] = [
    # document, Content-Type, a word of the message
    ([], None, "not a JSON object"),
    ("manifest", None, "not a JSON object"),
    (image(schemaVersion=1), None, "schemaVersion"),
    (image(schemaVersion="2"), None, "schemaVersion"),
    (image(schemaVersion=...), None, "schemaVersion"),
    (image(mediaType=5), None, "mediaType must be a string"),
    (image(), OCI_INDEX, "does not match Content-Type"),
    (image(), DOCKER_MANIFEST, "does not match Content-Type"),
    (image(mediaType=...), "application/json", "unsupported"),
    ({"schemaVersion": 2}, None, "unsupported"),  # no type, and no shape to infer one
    (
        image(mediaType="application/vnd.docker.distribution.manifest.v1+prettyjws"),
        None,
        "unsupported",
    ),
    (image(config=...), None, "config is not a descriptor"),
    (image(config="sha256:x"), None, "config is not a descriptor"),
    (image(layers={}), None, "layers must be a list"),
    (image(layers=[d(size=-1)]), None, "layers[0].size"),
    (image(layers=[d(size=True)]), None, "layers[0].size"),  # a bool is not a size
    (image(layers=[d(size=1.5)]), None, "layers[0].size"),
    (image(layers=[d(size="1")]), None, "layers[0].size"),
    (image(layers=[d(), d(media_type="")]), None, "layers[1].mediaType"),
    (image(layers=[{"mediaType": LAYER_TYPE, "size": 1}]), None, "layers[0].digest"),
    (image(layers=[d("sha256:abc")]), None, "layers[0].digest"),
    (image(layers=[d("md5:" + "a" * 32)]), None, "layers[0].digest"),
    (image(layers=[d(urls="https://x")]), None, "urls"),
    (image(layers=[d(urls=[1])]), None, "urls"),
    (image(subject="sha256:x"), None, "subject"),
    (image(artifactType=1), None, "artifactType"),
    (image(annotations=["k"]), None, "annotations"),
    (image(annotations={"k": 1}), None, "annotations"),
    (index(manifests=...), None, "manifests must be a list"),
    (index(manifests=[d(size=-1)]), None, "manifests[0].size"),
]


@pytest.mark.parametrize(("doc", "content_type", "why"), REFUSED)
def test_unfit_manifests_are_refused_with_the_reason(
    doc: Any, content_type: str | None, why: str
) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse(doc, content_type)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bodies_that_are_not_json_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(InvalidManifest, match=why):
        parse_manifest(body, OCI_MANIFEST)


def test_the_size_limit_is_four_mib_exactly() -> None:
    """A manifest of exactly 4 MiB is accepted (padded with JSON blanks); one byte more
    is refused before it is parsed."""
    body = json.dumps(image()).encode()
    at_limit = body + b" " * (MAX_MANIFEST_BYTES - len(body))
    assert len(at_limit) == MAX_MANIFEST_BYTES == 4 * 1024 * 1024
    assert parse_manifest(at_limit, OCI_MANIFEST).media_type == OCI_MANIFEST
    with pytest.raises(InvalidManifest, match="larger than 4 MiB"):
        parse_manifest(at_limit + b" ", OCI_MANIFEST)
