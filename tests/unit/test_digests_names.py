"""Digests, repository names and tags: validated before they ever name a file."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.oci.digest import Digest, InvalidDigest, new_hasher
from dockyard.oci.names import (
    InvalidName,
    InvalidTag,
    is_tag,
    validate_name,
    validate_tag,
)

HEX64 = "0123456789abcdef" * 4
HEX128 = HEX64 * 2


@pytest.mark.parametrize(
    ("text", "algorithm", "hexpart"),
    [(f"sha256:{HEX64}", "sha256", HEX64), (f"sha512:{HEX128}", "sha512", HEX128)],
)
def test_valid_digests_parse_and_print_back(text: str, algorithm: str, hexpart: str) -> None:
    digest = Digest.parse(text)
    assert (digest.algorithm, digest.hex) == (algorithm, hexpart)
    assert str(digest) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "malformed"),
        (HEX64, "malformed"),  # no algorithm
        (f"sha256{HEX64}", "malformed"),
        (f"sha256:{HEX64[:-1]}", "64 lower-case hex"),
        (f"sha256:{HEX64}0", "64 lower-case hex"),
        (f"sha256:{HEX64.upper()}", "64 lower-case hex"),
        (f"sha256:{HEX128}", "64 lower-case hex"),
        (f"sha512:{HEX64}", "128 lower-case hex"),
        (f"sha256:{'g' * 64}", "64 lower-case hex"),
        (f"md5:{'a' * 32}", "unsupported digest algorithm"),
        (f"SHA256:{HEX64}", "malformed"),
        (f"sha256:../../{HEX64[:58]}", "malformed"),
        (f"sha256:{HEX64}/x", "malformed"),
        (f"sha256:{HEX64[:32]}%2F{HEX64[:29]}", "malformed"),
        (f" sha256:{HEX64}", "malformed"),
    ],
)
def test_malformed_digests_are_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidDigest, match=why):
        Digest.parse(text)


def test_a_digest_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(f"sha256:{HEX64}\n")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_digest_of_matches_hashlib(algorithm: str) -> None:
    data = b"dockyard"
    expected = hashlib.new(algorithm, data).hexdigest()
    assert Digest.of(data, algorithm) == Digest(algorithm, expected)
    hasher = new_hasher(algorithm)
    hasher.update(data[:4])
    hasher.update(data[4:])
    assert hasher.hexdigest() == expected


VALID_NAMES = [
    "a",
    "library/alpine",
    "a/b/c/d/e",
    "a.b",
    "a_b",
    "a__b",
    "a-b",
    "a---b",
    "0/9",
    "x" * 255,  # distribution's limit
    "blobsy/index.jsonx",  # reserved words only as whole components
]

INVALID_NAMES = [
    "",
    "A",
    "library/Alpine",
    "/a",
    "a/",
    "a//b",
    "-a",
    "a-",
    ".a",
    "a.",
    "_a",
    "a..b",
    "a___b",
    "a._b",
    "a/../b",
    "..",
    "a/./b",
    "a b",
    "a:b",
    "a@b",
    "a%2Fb",
    "a\\b",
    "é",
    "x" * 256,
]

RESERVED_NAMES = ["blobs", "a/blobs", "a/blobs/b", "index.json", "a/oci-layout"]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names_pass_unchanged(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_name(name)


@pytest.mark.parametrize("name", RESERVED_NAMES)
def test_names_that_would_land_on_a_parents_layout_are_refused(name: str) -> None:
    """A repository ``a/blobs`` would be the folder of ``a``'s blobs."""
    with pytest.raises(InvalidName, match="reserved component"):
        validate_name(name)


VALID_TAGS = ["v1", "latest", "_private", "1.0.0-rc.1", "A_b-C.d", "x" * 128]
INVALID_TAGS = ["", ".hidden", "-rm", "v1/x", "v1:x", "v 1", "é", "x" * 129, "a@b"]


@pytest.mark.parametrize("tag", VALID_TAGS)
def test_valid_tags(tag: str) -> None:
    assert is_tag(tag)
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", INVALID_TAGS)
def test_invalid_tags(tag: str) -> None:
    assert not is_tag(tag)
    with pytest.raises(InvalidTag):
        validate_tag(tag)


@pytest.mark.parametrize("text", ["foo\n", "v1\n"])
def test_a_trailing_newline_is_neither_a_name_nor_a_tag(text: str) -> None:
    assert not is_tag(text)
    with pytest.raises(InvalidName):
        validate_name(text)
