"""placeholder"""

from aiohttp import web


def install(app: web.Application) -> None:
    pass
