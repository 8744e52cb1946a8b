"""A client of one upstream registry: TLS, Basic auth and the bearer-token dance.

Built on aiohttp's client. Every call is bounded: a refused or unreachable upstream fails
within ``CONNECT_TIMEOUT``, a silent one within ``READ_TIMEOUT``, so an on-demand miss
never hangs. What comes back is untrusted: manifests are read up to 4 MiB and no further,
sizes and digests are parsed before use, and names come from the caller, never from the
upstream.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from dockyard.ext.sync.credentials import Credentials
from dockyard.oci import mediatypes as mt
from dockyard.oci.manifest import MAX_MANIFEST_BYTES

log = logging.getLogger("dockyard.sync")

CONNECT_TIMEOUT = 3.0
#: Longest silence between two reads of a response before the upstream counts as down.
READ_TIMEOUT = 30.0
#: Pages of the catalog and tag lists are small JSON: bound them like manifests.
MAX_LIST_BYTES = 8 * 1024 * 1024
MANIFEST_ACCEPT = ", ".join(
    [mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST]
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NEXT_LINK = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")
#: Tokens are dropped this long before the expiry the token server stated.
_TOKEN_MARGIN = 5.0


class UpstreamError(Exception):
    """The upstream could not answer (down, refused us, or sent something unusable)."""


@dataclass(frozen=True)
class Fetched:
    """A manifest as the upstream sent it."""

    body: bytes
    media_type: str | None
    digest: str | None


def client_tls(tls_verify: bool, cert_dir: str | None) -> ssl.SSLContext:
    """zot's ``certDir``: ``ca.crt`` to trust, ``client.cert``/``client.key`` for mTLS.

    ``tlsVerify: false`` only stops checking the upstream's certificate: the client pair
    is still presented, since an upstream that requires one refuses the handshake without.
    """
    ctx = ssl.create_default_context()
    if not tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_dir:
        folder = Path(cert_dir)
        if tls_verify and (folder / "ca.crt").exists():
            ctx.load_verify_locations(cafile=str(folder / "ca.crt"))
        if (folder / "client.cert").exists() and (folder / "client.key").exists():
            ctx.load_cert_chain(str(folder / "client.cert"), str(folder / "client.key"))
    return ctx


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body when it is at most ``limit`` bytes; UpstreamError before reading more."""
    if response.content_length is not None and response.content_length > limit:
        raise UpstreamError(f"upstream sent {response.content_length} bytes, over {limit}")
    data = bytearray()
    async for chunk in response.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise UpstreamError(f"upstream sent more than {limit} bytes")
    return bytes(data)


class Upstream:
    """One upstream URL, its credentials and the bearer tokens it handed out."""

    def __init__(
        self,
        url: str,
        credentials: Credentials | None = None,
        tls: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.host = urlsplit(self.url).netloc
        self.credentials = credentials
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        #: scope -> (token, monotonic expiry)
        self._tokens: dict[str, tuple[str, float]] = {}
        #: scope -> the lock held while a token for it is asked for, so requests that meet
        #: the same 401 at once share one token request.
        self._token_locks: dict[str, asyncio.Lock] = {}
        #: True once the upstream asked for Basic: send it up front from then on.
        self._basic = False

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=CONNECT_TIMEOUT,
                sock_connect=CONNECT_TIMEOUT,
                sock_read=READ_TIMEOUT,
            )
            connector = aiohttp.TCPConnector(ssl=self._tls, limit=32)
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                connector=connector,
                auto_decompress=False,
                # Blobs arrive in reads of up to 1 MiB rather than aiohttp's 64 KiB default.
                read_bufsize=1024 * 1024,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _basic_header(self) -> str | None:
        if self.credentials is None:
            return None
        user, password = self.credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _auth_header(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and token[1] > time.monotonic():
            return f"Bearer {token[0]}"
        return self._basic_header() if self._basic else None

    async def _token(self, challenge: str, scope: str, refused: str | None) -> None:
        """The bearer dance: ask the realm for a token for ``scope``, with our credentials
        when we have some, anonymously when not; keep it until it nears expiry.

        One request per scope at a time: whoever waited for the lock uses the token the
        holder got, unless that is ``refused``, the token the upstream just turned down.
        """
        lock = self._token_locks.setdefault(scope, asyncio.Lock())
        async with lock:
            held = self._tokens.get(scope)
            if held is not None and held[1] > time.monotonic() and held[0] != refused:
                return
            await self._new_token(challenge, scope)

    async def _new_token(self, challenge: str, scope: str) -> None:
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm or not realm.startswith(("http://", "https://")):
            raise UpstreamError(f"{self.host}: bearer challenge without a usable realm")
        query = {"service": params["service"]} if "service" in params else {}
        query["scope"] = params.get("scope") or scope
        headers = {}
        basic = self._basic_header()
        if basic is not None:
            headers["Authorization"] = basic
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        async with self._client().get(url, headers=headers) as resp:
            if resp.status != 200:
                raise UpstreamError(f"{self.host}: token server answered {resp.status}")
            doc = await resp.json(content_type=None)
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"{self.host}: token server sent no token")
        expires = doc.get("expires_in", 60)
        lifetime = float(expires) if isinstance(expires, int | float) and expires > 0 else 60.0
        self._tokens[scope] = (token, time.monotonic() + max(lifetime - _TOKEN_MARGIN, 1.0))

    async def request(
        self, method: str, path: str, scope: str, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """Send a request, answering one 401 challenge (Bearer or Basic) and retrying once.

        The caller releases the response (``async with`` or ``release()``).
        """
        url = path if path.startswith(("http://", "https://")) else f"{self.url}{path}"
        for attempt in range(2):
            sent = dict(headers or {})
            auth = self._auth_header(scope)
            if auth is not None:
                sent["Authorization"] = auth
            try:
                resp = await self._client().request(method, url, headers=sent, allow_redirects=True)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise UpstreamError(f"{self.host} unreachable: {exc!r}") from exc
            if resp.status != 401 or attempt:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.release()
            kind = challenge.split(" ", 1)[0].lower()
            try:
                if kind == "bearer":
                    refused = auth[7:] if auth and auth.startswith("Bearer ") else None
                    await self._token(challenge, scope, refused)
                elif (
                    kind == "basic"
                    and self.credentials is not None
                    and not (auth or "").startswith("Basic ")
                ):
                    # Retry whenever this request went without: another request may have
                    # switched Basic on meanwhile (concurrent first requests, as a blob GET
                    # reaching a worker process that never asked this upstream before).
                    self._basic = True
                else:
                    return resp
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                raise UpstreamError(f"{self.host}: token request failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def manifest(self, name: str, reference: str, method: str = "GET") -> Fetched | None:
        """The manifest under a tag or digest, None when the upstream does not have it."""
        resp = await self.request(
            method,
            f"/v2/{name}/manifests/{reference}",
            f"repository:{name}:pull",
            {"Accept": MANIFEST_ACCEPT},
        )
        async with resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise UpstreamError(f"{self.host}: manifest {name}:{reference} -> {resp.status}")
            body = b"" if method == "HEAD" else await self._read(resp, MAX_MANIFEST_BYTES)
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip() or None
            return Fetched(body, media_type, resp.headers.get("Docker-Content-Digest"))

    async def _read(self, resp: aiohttp.ClientResponse, limit: int) -> bytes:
        try:
            return await read_capped(resp, limit)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamError(f"{self.host}: read failed: {exc!r}") from exc

    async def blob(
        self, name: str, digest: str, method: str = "GET"
    ) -> aiohttp.ClientResponse | None:
        """The blob's response (the caller streams and releases it); None on 404."""
        resp = await self.request(method, f"/v2/{name}/blobs/{digest}", f"repository:{name}:pull")
        if resp.status == 404:
            resp.release()
            return None
        if resp.status != 200:
            resp.release()
            raise UpstreamError(f"{self.host}: blob {name}@{digest} -> {resp.status}")
        return resp

    async def _pages(self, path: str, scope: str, key: str) -> AsyncIterator[str]:
        """Follow ``Link: rel=next`` through a paged list, yielding each string entry."""
        url: str | None = path
        seen = 0
        while url is not None:
            resp = await self.request("GET", url, scope)
            async with resp:
                if resp.status == 404:
                    return
                if resp.status != 200:
                    raise UpstreamError(f"{self.host}: {url} -> {resp.status}")
                doc: Any = _json(await self._read(resp, MAX_LIST_BYTES))
                link = _NEXT_LINK.search(resp.headers.get("Link", ""))
            entries = doc.get(key) if isinstance(doc, dict) else None
            for entry in entries or ():
                if isinstance(entry, str):
                    yield entry
            seen += 1
            url = urljoin(self.url + "/", link[1]) if link and entries else None
            if url is not None and urlsplit(url).netloc != self.host:
                raise UpstreamError(f"{self.host}: next page on another host {url!r}")
            if seen > 100_000:
                raise UpstreamError(f"{self.host}: {path} pages without end")

    def catalog(self) -> AsyncIterator[str]:
        return self._pages("/v2/_catalog?n=1000", "registry:catalog:*", "repositories")

    def tags(self, name: str) -> AsyncIterator[str]:
        return self._pages(f"/v2/{name}/tags/list", f"repository:{name}:pull", "tags")

    async def referrers(self, name: str, digest: str) -> list[dict[str, Any]]:
        """Descriptors of the referrers of ``digest``; [] when the API is missing."""
        resp = await self.request(
            "GET",
            f"/v2/{name}/referrers/{digest}",
            f"repository:{name}:pull",
            {"Accept": mt.OCI_INDEX},
        )
        async with resp:
            if resp.status != 200:
                return []
            doc: Any = _json(await self._read(resp, MAX_MANIFEST_BYTES))
        found = doc.get("manifests") if isinstance(doc, dict) else None
        return [d for d in found or () if isinstance(d, dict)]


def _json(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"upstream sent invalid JSON: {exc}") from exc
