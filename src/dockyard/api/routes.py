"""The API's route table: every route's method, path, handler and the access it needs.

=====================================  ==========  ===========================================
endpoint                               method      needs
=====================================  ==========  ===========================================
``/livez``, ``/readyz``, ``/startupz``  GET, HEAD   nothing (not guarded)
``/v2/``                               GET, HEAD   a login (anonymous only when nothing else)
``/v2/_catalog``                       GET, HEAD   a login or anonymous access; lists readable
``<name>/tags/list``                   GET, HEAD   ``read``
``<name>/referrers/<digest>``          GET, HEAD   ``read``
``<name>/manifests/<ref>``             GET, HEAD   ``read``
``<name>/manifests/<ref>``             PUT         ``create``; ``update`` when a tag it sets
                                                   already exists (the tag would move)
``<name>/manifests/<ref>``             DELETE      ``delete``
``<name>/blobs/<digest>``              GET, HEAD   ``read`` (a HEAD links in a blob held
                                                   elsewhere only with ``create`` too)
``<name>/blobs/<digest>``              DELETE      ``delete``
``<name>/blobs/uploads/...``           any         ``create`` (a mount also needs ``read`` on
                                                   its source, checked by the handler)
``/zot/auth/apikey``                   any         a login (password or client certificate)
=====================================  ==========  ===========================================

The extensions declare theirs beside their handlers, with the same :class:`Route` rows:
the search API (``ext/search``: like the catalog), the metrics (``ext/metrics``: who may
read every repository) and the UI (``ui``: not guarded). Uploads count as ``create``, as
in zot: status queries and cancels are part of a push. Whether a manifest PUT moves a tag
is decided by the auth middleware on its headers, and again when it publishes
(``RepoManifests.put``), since the tag may appear while the body arrives.

Repository names contain slashes, so ``name`` matches greedily and the fixed suffix
(``/blobs/``, ``/manifests/`` ...) decides the endpoint; the handler then checks the name
against the spec's grammar and answers NAME_INVALID, never a bare 404.
"""

from __future__ import annotations

from dockyard.api import (
    apikey_handlers,
    base,
    blob_handlers,
    health,
    listing,
    manifest_handlers,
    referrer_handlers,
    upload_handlers,
)
from dockyard.auth.access_policy import CREATE, DELETE, READ
from dockyard.web.routing import Access, Route

_NAME = "{name:.+}"
_MANIFEST = f"/v2/{_NAME}/manifests/{{reference}}"
_UPLOADS = f"/v2/{_NAME}/blobs/uploads"
_SESSION = f"/v2/{_NAME}/blobs/uploads/{{session}}"
_BLOB = f"/v2/{_NAME}/blobs/{{digest}}"
_REFERRERS = f"/v2/{_NAME}/referrers/{{digest}}"
#: zot's API key endpoints.
APIKEY_PATH = "/zot/auth/apikey"

#: The health probes: installed first, so they answer without a login.
PROBE_ROUTES = (
    Route("GET", "/livez", health.livez, Access.PUBLIC),
    Route("GET", "/readyz", health.readyz, Access.PUBLIC),
    Route("GET", "/startupz", health.startupz, Access.PUBLIC),
)

#: The distribution-spec API.
SPEC_ROUTES = (
    Route("GET", "/v2/", base.version_check, Access.LOGIN),
    Route("GET", "/v2", base.version_check, Access.LOGIN),
    Route("GET", "/v2/_catalog", listing.catalog, Access.CATALOG),
    Route("GET", f"/v2/{_NAME}/tags/list", listing.list_tags, Access.REPO, READ),
    Route(
        "GET",
        f"/v2/{_NAME}/referrers/{{digest}}",
        referrer_handlers.list_referrers,
        Access.REPO,
        READ,
    ),
    Route("GET", _MANIFEST, manifest_handlers.get_manifest, Access.REPO, READ),
    Route("PUT", _MANIFEST, manifest_handlers.put_manifest, Access.REPO, CREATE, sets_tags=True),
    Route("DELETE", _MANIFEST, manifest_handlers.delete_manifest, Access.REPO, DELETE),
    Route("POST", _UPLOADS + "/", upload_handlers.start_upload, Access.REPO, CREATE),
    Route("POST", _UPLOADS, upload_handlers.start_upload, Access.REPO, CREATE),
    Route("GET", _SESSION, upload_handlers.get_upload, Access.REPO, CREATE),
    Route("PATCH", _SESSION, upload_handlers.patch_upload, Access.REPO, CREATE),
    Route("PUT", _SESSION, upload_handlers.put_upload, Access.REPO, CREATE),
    Route("DELETE", _SESSION, upload_handlers.cancel_upload, Access.REPO, CREATE),
    Route("GET", _BLOB, blob_handlers.get_blob, Access.REPO, READ),
    Route("DELETE", _BLOB, blob_handlers.delete_blob, Access.REPO, DELETE),
)

#: zot's API key endpoints, installed when ``http.auth.apikey`` is on. Even when off, a
#: request to their path needs a login before it learns they are absent (the guard knows).
API_KEY_ROUTES = tuple(
    Route(method, path, handler, Access.OWN_KEYS)
    for path in (APIKEY_PATH, APIKEY_PATH + "/")
    for method, handler in (
        ("POST", apikey_handlers.create_key),
        ("GET", apikey_handlers.list_keys),
        ("DELETE", apikey_handlers.revoke_key),
    )
)
