"""The registry operations the workloads time, over one aiohttp session per target.

Each method is one client-visible operation (a blob push is POST then PUT) and raises
:class:`RegistryError` on any answer the distribution spec does not give for success, so
the caller counts it as an error; nothing is retried, since a retry would hide a failure
inside a latency. Bodies stream from :class:`Content`, so no blob is ever held whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from dockyard.bench.content import PIECE, Blob, Content

#: What a pull client sends, so a registry never converts or refuses a manifest.
ACCEPT_MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_OCTETS = "application/octet-stream"
#: Bytes read per await when pulling: large, so the client spends little per byte.
READ_BUFFER = 4 << 20


class RegistryError(Exception):
    """An answer the benchmark did not expect: counted as an error, never retried."""


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, if it is plain HTTP to a loopback address.

    The benchmark floods its targets, so it refuses to aim anywhere but this machine.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url!r}: give an http:// URL with a host")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{url!r}: only loopback targets (127.0.0.0/8, ::1, localhost)")
    return url.rstrip("/")


def new_session(connections: int) -> aiohttp.ClientSession:
    """A session holding at most ``connections`` connections, kept alive between requests.

    No total timeout (a 1 GiB transfer may take minutes); a stalled read or connect fails
    after a bound instead, and the workload's own deadline bounds the loop.
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        read_bufsize=READ_BUFFER,
        raise_for_status=False,
    )


async def _expect(resp: aiohttp.ClientResponse, *statuses: int) -> bytes:
    """The body of ``resp`` when its status is one of ``statuses``; else RegistryError."""
    body = await resp.read()
    if resp.status not in statuses:
        text = body[:200].decode("utf-8", "replace")
        raise RegistryError(f"{resp.method} {resp.url.path}: {resp.status} {text}")
    return body


class Registry:
    """One target registry, reached through one session."""

    def __init__(self, session: aiohttp.ClientSession, base: str, content: Content) -> None:
        self.session = session
        self.base = base
        self.content = content

    def _url(self, path: str) -> URL:
        return URL(self.base + path, encoded=True)

    def _location(self, resp: aiohttp.ClientResponse) -> str:
        """The upload URL to use next: each answer may carry new state in its Location."""
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{resp.method} {resp.url.path}: {resp.status} without Location")
        return location if location.startswith("http") else self.base + location

    @staticmethod
    def _with_digest(location: str, digest: str) -> URL:
        # Built by hand: distribution's opaque _state must go back byte for byte.
        sep = "&" if "?" in location else "?"
        return URL(f"{location}{sep}digest={quote(digest, safe='')}", encoded=True)

    async def ping(self) -> None:
        async with self.session.get(self._url("/v2/")) as resp:
            await _expect(resp, 200)

    async def warm(self, connections: int) -> None:
        """Open ``connections`` keep-alive connections before a timed section."""
        await asyncio.gather(*(self.ping() for _ in range(connections)))

    async def _start_upload(self, repo: str) -> str:
        async with self.session.post(self._url(f"/v2/{repo}/blobs/uploads/")) as resp:
            await _expect(resp, 202)
            return self._location(resp)

    def _body(self, blob: Blob, start: int = 0, end: int | None = None) -> object:
        end = blob.size if end is None else end
        if end - start <= PIECE:
            return b"".join(self.content.pieces(blob, start, end))
        return self.content.stream(blob, start, end)

    async def push_monolithic(self, repo: str, blob: Blob) -> int:
        """POST, then one PUT carrying the whole blob; the number of requests made."""
        digest = self.content.known_digest(blob)
        location = await self._start_upload(repo)
        headers = {"Content-Type": _OCTETS, "Content-Length": str(blob.size)}
        async with self.session.put(
            self._with_digest(location, digest), data=self._body(blob), headers=headers
        ) as resp:
            await _expect(resp, 201)
        return 2

    async def push_chunked(self, repo: str, blob: Blob, chunk: int) -> int:
        """POST, one PATCH with Content-Range per chunk, then an empty PUT; requests made."""
        digest = self.content.known_digest(blob)
        location = await self._start_upload(repo)
        requests = 1
        for start in range(0, blob.size, chunk):
            end = min(blob.size, start + chunk)
            headers = {
                "Content-Type": _OCTETS,
                "Content-Length": str(end - start),
                "Content-Range": f"{start}-{end - 1}",
            }
            async with self.session.patch(
                URL(location, encoded=True), data=self._body(blob, start, end), headers=headers
            ) as resp:
                await _expect(resp, 202)
                location = self._location(resp)
            requests += 1
        headers = {"Content-Type": _OCTETS, "Content-Length": "0"}
        async with self.session.put(self._with_digest(location, digest), headers=headers) as resp:
            await _expect(resp, 201)
        return requests + 1

    async def push_bytes(self, repo: str, data: bytes) -> str:
        """Monolithic push of small content (a config); its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = await self._start_upload(repo)
        headers = {"Content-Type": _OCTETS}
        async with self.session.put(
            self._with_digest(location, digest), data=data, headers=headers
        ) as resp:
            await _expect(resp, 201)
        return digest

    async def blob_exists(self, repo: str, digest: str) -> bool:
        async with self.session.head(self._url(f"/v2/{repo}/blobs/{digest}")) as resp:
            await _expect(resp, 200, 404)
            return resp.status == 200

    async def mount(self, repo: str, digest: str, source: str) -> bool:
        """Cross-repository mount; False (and the opened session cancelled) if refused."""
        query = f"?mount={quote(digest, safe='')}&from={quote(source, safe='')}"
        async with self.session.post(self._url(f"/v2/{repo}/blobs/uploads/{query}")) as resp:
            await _expect(resp, 201, 202)
            if resp.status == 201:
                return True
            location = self._location(resp)
        async with self.session.delete(URL(location, encoded=True)) as resp:
            await resp.read()
        return False

    async def delete_blob(self, repo: str, digest: str) -> None:
        async with self.session.delete(self._url(f"/v2/{repo}/blobs/{digest}")) as resp:
            await _expect(resp, 202, 404)

    async def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest by tag or digest; the digest the registry answers with."""
        headers = {"Content-Type": media_type}
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        async with self.session.put(url, data=body, headers=headers) as resp:
            await _expect(resp, 201)
            return resp.headers.get("Docker-Content-Digest", "")

    async def manifest(self, repo: str, reference: str, method: str = "GET") -> int:
        """GET or HEAD a manifest; the body length (0 for HEAD). 404 is an error."""
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        headers = {"Accept": ACCEPT_MANIFESTS}
        async with self.session.request(method, url, headers=headers) as resp:
            return len(await _expect(resp, 200))

    async def manifest_exists(self, repo: str, reference: str) -> bool:
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        headers = {"Accept": ACCEPT_MANIFESTS}
        async with self.session.head(url, headers=headers) as resp:
            await _expect(resp, 200, 404)
            return resp.status == 200

    async def delete_manifest(self, repo: str, digest: str) -> None:
        async with self.session.delete(self._url(f"/v2/{repo}/manifests/{digest}")) as resp:
            await _expect(resp, 202, 404)

    async def get(self, path_and_query: str, *also: int) -> tuple[int, bytes]:
        """GET a listing (tags, catalog): status and body. Anything but 200 or ``also`` fails."""
        async with self.session.get(self._url(path_and_query)) as resp:
            return resp.status, await _expect(resp, 200, *also)
