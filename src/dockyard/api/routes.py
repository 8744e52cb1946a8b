"""The URL map of the distribution-spec API.

Repository names contain slashes, so ``name`` matches greedily and the fixed suffix
(``/blobs/``, ``/manifests/`` ...) decides the endpoint; the handler then checks the name
against the spec's grammar and answers NAME_INVALID, never a bare 404.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api import base, blobs, listing, manifests, referrers, uploads

_NAME = "{name:.+}"


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/", base.version_check)
    r.add_get("/v2", base.version_check)
    r.add_get("/v2/_catalog", listing.catalog)
    r.add_get(f"/v2/{_NAME}/tags/list", listing.list_tags)
    r.add_get(f"/v2/{_NAME}/referrers/{{digest}}", referrers.list_referrers)

    r.add_get(f"/v2/{_NAME}/manifests/{{reference}}", manifests.get_manifest)
    r.add_put(f"/v2/{_NAME}/manifests/{{reference}}", manifests.put_manifest)
    r.add_delete(f"/v2/{_NAME}/manifests/{{reference}}", manifests.delete_manifest)

    r.add_post(f"/v2/{_NAME}/blobs/uploads/", uploads.start_upload)
    r.add_post(f"/v2/{_NAME}/blobs/uploads", uploads.start_upload)
    r.add_get(f"/v2/{_NAME}/blobs/uploads/{{session}}", uploads.get_upload)
    r.add_patch(f"/v2/{_NAME}/blobs/uploads/{{session}}", uploads.patch_upload)
    r.add_put(f"/v2/{_NAME}/blobs/uploads/{{session}}", uploads.put_upload)
    r.add_delete(f"/v2/{_NAME}/blobs/uploads/{{session}}", uploads.cancel_upload)

    r.add_get(f"/v2/{_NAME}/blobs/{{digest}}", blobs.get_blob)
    r.add_delete(f"/v2/{_NAME}/blobs/{{digest}}", blobs.delete_blob)
