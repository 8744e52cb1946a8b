"""``/v2/``: the version check every client makes first."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.request_params import API_VERSION_HEADER


async def version_check(request: web.Request) -> web.Response:
    return web.json_response({}, headers=API_VERSION_HEADER)
