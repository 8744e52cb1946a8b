"""Content digests (``algorithm:hex``), validated before they ever name a file."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

#: Hex length of each algorithm we accept; the spec names sha256 (required) and sha512.
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"^(?P<alg>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)\Z")


class InvalidDigest(ValueError):
    """The string is not a digest this registry can verify."""


class Hasher(Protocol):
    """What hashlib objects offer; named so storage can keep one across requests."""

    def update(self, data: bytes | bytearray, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest: only lower-case hex of the right length for a known algorithm."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST.match(text)
        if not match:
            raise InvalidDigest(f"malformed digest {text!r}")
        alg, hexpart = match["alg"], match["hex"]
        length = _HEX_LENGTH.get(alg)
        if length is None:
            raise InvalidDigest(f"unsupported digest algorithm {alg!r}")
        if len(hexpart) != length or not re.fullmatch(r"[a-f0-9]+", hexpart):
            raise InvalidDigest(f"digest {text!r} is not {length} lower-case hex digits")
        return cls(alg, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data`` (small content such as manifests)."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> Hasher:
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def new_hasher(algorithm: str = "sha256") -> Hasher:
    """A fresh hash object for an upload whose digest is not known yet."""
    return hashlib.new(algorithm)
