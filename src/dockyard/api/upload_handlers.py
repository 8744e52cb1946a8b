"""Blob uploads: ``/v2/<name>/blobs/uploads/`` (end-4a, 4b, 5, 6, 11, 13).

Sessions are private to their client, so chunks stream straight to the session file with
no repository lock; only the final PUT publishes. With access control, a session belongs
to the user who opened it (by name, so a password, an API key and a client certificate
of one user are one owner); to anyone else it is unknown.
"""

from __future__ import annotations

import re

from aiohttp import web

from dockyard.api.request_params import digest_param, repo_name, services, store
from dockyard.oci.names import validate_name
from dockyard.storage.errors import BlobUploadInvalid
from dockyard.storage.repo_blobs import RepoBlobs
from dockyard.storage.upload_session import ANYONE, Caller, Session
from dockyard.web.bodies import streamed_body
from dockyard.web.request_keys import identity, read_filter
from dockyard.web.spec_errors import ApiError

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?\Z")


def _session_headers(name: str, session: Session) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{session.id}",
        "Range": f"0-{max(session.size - 1, 0)}",
        "Docker-Upload-UUID": session.id,
    }


def _blob_headers(name: str, digest: str) -> dict[str, str]:
    return {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}


def _content_range(request: web.Request) -> tuple[int | None, int | None]:
    """Start and length declared by ``Content-Range``, or (None, None) when absent."""
    raw = request.headers.get("Content-Range")
    if raw is None:
        return None, None
    match = _CONTENT_RANGE.match(raw.strip())
    if not match or int(match[2]) < int(match[1]):
        raise BlobUploadInvalid(f"malformed Content-Range {raw!r}", {"Content-Range": raw})
    start, end = int(match[1]), int(match[2])
    return start, end - start + 1


def _caller(request: web.Request) -> Caller:
    """Whose sessions the request may use: its user's (None: anonymous), or any when
    access is not controlled at all."""
    who = identity(request)
    return ANYONE if who is None else who.user


async def _own_session(request: web.Request, name: str, blobs: RepoBlobs) -> Session:
    return await blobs.session(name, request.match_info["session"], _caller(request))


async def start_upload(request: web.Request) -> web.Response:
    """POST: mount, monolithic upload (``?digest=``), or a new session (202)."""
    name, svc = services(request)
    query = request.query
    if "mount" in query:
        digest = digest_param(query["mount"])
        source = validate_name(query["from"]) if query.get("from") else None
        # Only from repositories the caller may read; else it uploads like anyone else.
        if await store(request).mount(name, digest, source, read_filter(request)):
            return web.Response(status=201, headers=_blob_headers(name, str(digest)))
    caller = _caller(request)
    session = await svc.blobs.open_upload(name, None if caller is ANYONE else caller)
    if "digest" in query:
        digest = digest_param(query["digest"])
        async with session.lock:
            try:
                async with streamed_body(request) as body:
                    # Stored, or only hashed when the root holds the bytes (upload_whole).
                    await svc.blobs.upload_whole(
                        session, body, digest, declared=request.content_length
                    )
            except BaseException:
                await svc.root.off_loop(svc.root.uploads.forget, session)
                raise
        return web.Response(status=201, headers=_blob_headers(name, str(digest)))
    return web.Response(status=202, headers=_session_headers(name, session))


async def patch_upload(request: web.Request) -> web.Response:
    """PATCH: append a chunk (with Content-Range) or a streamed body (without)."""
    name, svc = services(request)
    session = await _own_session(request, name, svc.blobs)
    start, length = _content_range(request)
    async with session.lock, streamed_body(request) as body:
        await svc.blobs.append(session, body, start, length)
    return web.Response(status=202, headers=_session_headers(name, session))


async def put_upload(request: web.Request) -> web.Response:
    """PUT ``?digest=``: append any last bytes, verify, publish (201)."""
    name, svc = services(request)
    session = await _own_session(request, name, svc.blobs)
    raw = request.query.get("digest")
    if not raw:
        raise ApiError("DIGEST_INVALID", "the digest query parameter is required", 400)
    digest = digest_param(raw)
    start, length = _content_range(request)
    async with session.lock, streamed_body(request) as body:
        # Stored, or only hashed when the root holds the bytes (see upload_whole).
        await svc.blobs.upload_whole(
            session, body, digest, start, length, declared=request.content_length
        )
    return web.Response(status=201, headers=_blob_headers(name, str(digest)))


async def get_upload(request: web.Request) -> web.Response:
    """GET: where the session stands (204 with Range), so a client can resume."""
    name, svc = services(request)
    session = await _own_session(request, name, svc.blobs)
    return web.Response(status=204, headers=_session_headers(name, session))


async def cancel_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    svc = store(request).for_repo(name)
    session = await _own_session(request, name, svc.blobs)
    await svc.blobs.cancel(session)
    return web.Response(status=204)
