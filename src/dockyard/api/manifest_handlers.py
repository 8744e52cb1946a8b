"""Manifests: ``/v2/<name>/manifests/<reference>`` (end-3, end-7, end-9)."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.request_params import services
from dockyard.oci import mediatypes as mt
from dockyard.oci.manifest import MAX_MANIFEST_BYTES
from dockyard.storage.errors import ManifestUnknown, NameUnknown
from dockyard.storage.manifests import RepoManifests, StoredManifest
from dockyard.web.bodies import read_limited
from dockyard.web.mirror import miss_hook
from dockyard.web.request_keys import may_move_tag
from dockyard.web.spec_errors import ApiError


def _accepted(request: web.Request) -> set[str] | None:
    """Media types the client lists in Accept; None when it accepts anything."""
    types = {
        part.split(";")[0].strip()
        for header in request.headers.getall("Accept", [])
        for part in header.split(",")
    } - {""}
    if not types or "*/*" in types or "application/*" in types:
        return None
    return types


def _negotiate(
    manifests: RepoManifests, name: str, found: StoredManifest, accepted: set[str] | None
) -> StoredManifest:
    """Serve a client that cannot read an index the linux/amd64 image inside it.

    What distribution does for old clients. Clients that list the index type (docker,
    podman, skopeo, oras, containerd all do) get the stored bytes unchanged.
    """
    if accepted is None or found.media_type in accepted or found.media_type not in mt.INDEX_TYPES:
        return found
    manifest = manifests.root.load_manifest(name, found.digest)
    for desc in manifest.manifests if manifest else ():
        platform = desc.platform or {}
        if (
            desc.media_type in accepted
            and platform.get("os") == "linux"
            and platform.get("architecture") == "amd64"
        ):
            return manifests.resolve(name, str(desc.digest))
    return found


async def get_manifest(request: web.Request) -> web.Response:
    name, svc = services(request)
    reference = request.match_info["reference"]
    mirror = miss_hook(request)
    if mirror is not None:
        await mirror.refresh(svc, name, reference)
    try:
        found = await svc.manifests.find(name, reference)
    except (ManifestUnknown, NameUnknown):
        if mirror is None or not await mirror.manifest(svc, name, reference):
            raise
        found = await svc.manifests.find(name, reference)
    if ":" not in reference:
        # An index's child is read from the bucket on object storage: aside there.
        found = await svc.root.off_loop(_negotiate, svc.manifests, name, found, _accepted(request))
    headers = {"Docker-Content-Digest": found.digest, "ETag": f'"{found.digest}"'}
    # aiohttp keeps Content-Length and sends no body for HEAD.
    return web.Response(body=found.body, headers=headers, content_type=found.media_type)


async def put_manifest(request: web.Request) -> web.Response:
    name, svc = services(request)
    reference = request.match_info["reference"]
    body = await read_limited(request, MAX_MANIFEST_BYTES)
    if body is None:
        raise ApiError("SIZE_INVALID", "manifest is larger than 4 MiB", 413)
    result = await svc.manifests.put(
        name,
        reference,
        body,
        request.headers.get("Content-Type"),
        request.query.getall("tag", []),
        may_move_tag(request),
    )
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
    }
    if result.manifest.subject is not None:
        headers["OCI-Subject"] = str(result.manifest.subject.digest)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request) -> web.Response:
    name, svc = services(request)
    await svc.manifests.delete(name, request.match_info["reference"])
    return web.Response(status=202)
