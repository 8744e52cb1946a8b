"""Blob reads and deletes: ``/v2/<name>/blobs/<digest>`` (end-2, end-10)."""

from __future__ import annotations

from aiohttp import hdrs, web

from dockyard.api.blob_stream import redirect_blob, stream_blob, stream_direct
from dockyard.api.request_params import digest_param, services
from dockyard.oci.digest import Digest
from dockyard.storage.errors import BlobUnknown, NameUnknown
from dockyard.storage.store import RootServices
from dockyard.web.mirror import Stored, miss_hook
from dockyard.web.request_keys import may_create, read_filter
from dockyard.web.transfer import prepare_large_send


async def get_blob(request: web.Request) -> web.StreamResponse:
    """GET/HEAD a blob, served zero-copy with sendfile (streamed from object storage);
    one Range gives 206 (or 416)."""
    name, svc = services(request)
    digest = digest_param(request.match_info["digest"])
    headers = {
        "Docker-Content-Digest": str(digest),
        "Content-Type": "application/octet-stream",
        "Cache-Control": "max-age=31536000",
    }
    direct = await _direct(request, svc, name, digest, headers)
    if direct is not None:
        return direct
    # Only a HEAD links in a blob another repository holds: it is how clients ask "may I
    # skip this upload?", while a GET after a DELETE must stay a 404. Only for a caller
    # who may push here (for anyone else a HEAD is a read, and a read changes nothing),
    # and only from repositories the caller may read.
    link = request.method == "HEAD" and may_create(request, name)
    # Bytes that no longer match the digest are never served (see storage.integrity).
    try:
        path, size = await svc.blobs.checked(
            name, digest, link=link, source_ok=read_filter(request)
        )
    except (BlobUnknown, NameUnknown):
        mirror = miss_hook(request)
        fetched = await mirror.blob(request, svc, name, digest) if mirror else None
        if fetched is None:
            raise
        if not isinstance(fetched, Stored):
            return fetched
        # Fetched into a bucket: served below like any stored blob.
        path, size = await svc.blobs.checked(name, digest, source_ok=read_filter(request))
    if svc.root.backend.local_file(path) is None:  # a bucket: stream it, bounded
        s3 = svc.root.settings.s3
        if s3 is not None and s3.redirect and request.method == "GET":
            return await redirect_blob(svc.root.backend, path, headers)
        verify = s3 is None or not s3.skip_verify
        return await stream_blob(request, svc.root.backend, path, size, headers, verify=verify)
    prepare_large_send(request, size)
    return web.FileResponse(path, headers=headers)


async def _direct(
    request: web.Request, svc: RootServices, name: str, digest: Digest, headers: dict[str, str]
) -> web.StreamResponse | None:
    """A whole blob GET on object storage, served from the bucket's own answers without
    the look-ups first (``storage.direct_reads``); None: the full path answers. Not for
    a HEAD (it may link a blob in), a Range (its answer depends on the size), or the
    redirect mode (a 307 needs no bytes)."""
    s3 = svc.root.settings.s3
    if request.method != "GET" or hdrs.RANGE in request.headers or s3 is None or s3.redirect:
        return None
    read = await svc.blobs.direct.plan(name, digest)
    if read is None:
        return None
    verify = not s3.skip_verify
    return await stream_direct(request, svc.blobs.direct, read, digest, headers, verify=verify)


async def delete_blob(request: web.Request) -> web.Response:
    name, svc = services(request)
    digest = digest_param(request.match_info["digest"])
    await svc.blobs.delete(name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
