"""Referrers: ``/v2/<name>/referrers/<digest>`` (end-12)."""

from __future__ import annotations

import json

from aiohttp import web

from dockyard.api.request_params import digest_param, services
from dockyard.oci import mediatypes as mt


async def list_referrers(request: web.Request) -> web.Response:
    """An image index of the manifests whose subject is the digest, optionally filtered."""
    name, svc = services(request)
    subject = digest_param(request.match_info["digest"])
    artifact_type = request.query.get("artifactType")
    found = await svc.manifests.referrers(name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
    # The spec wants the bare media type: no charset parameter, so not json_response.
    return web.Response(body=json.dumps(body).encode(), headers=headers, content_type=mt.OCI_INDEX)
