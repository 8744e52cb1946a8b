"""Metadata lookups: manifests by tag, a 1000-tag repository's tag list, the catalog.

These are small requests, so what they measure is per-request cost: routing, the
lookup itself, and the response. Their setup data (tags, repositories) is created through
the API on each target, once: the setup checks what is there and pushes only what lacks.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from dockyard.bench import manifest_json as mf
from dockyard.bench.client import ACCEPT_MANIFESTS, Registry, RegistryError
from dockyard.bench.content import Blob, Content
from dockyard.bench.stats import Recorder
from dockyard.bench.workload import Context, Metric, Workload, gather_limited, run_pool
from dockyard.util.plural import count

#: Requests in flight while creating setup data.
SETUP_CONCURRENCY = 16
_LAYER_SIZE = 4096


async def timed_lookups(
    ctx: Context, rec: Recorder, method: str, path: str, count: int, connections: int
) -> None:
    """``count`` GETs or HEADs of ``path`` through the lean client; anything but 200 fails."""
    pool = ctx.raw
    if pool is None:
        raise RuntimeError("lookups are timed with the lean client")
    request = pool.request(method, path, {"Accept": ACCEPT_MANIFESTS})
    head = method == "HEAD"

    async def one(_: int) -> tuple[int, int]:
        status, body = await pool.send(request, head)
        if status != 200:
            raise RegistryError(f"{method} {path}: {status} {body[:200]!r}")
        return 1, len(body)

    await run_pool(ctx, rec, count, connections, one)


async def seed_image(registry: Registry, content: Content, repo: str) -> tuple[bytes, bytes]:
    """Push a tiny config and layer to ``repo`` (if missing); their bytes."""
    layer = content.body(Blob("seed/layer", _LAYER_SIZE))
    config = mf.config(f"{content.run_id}/seed", 1)
    for data in (layer, config):
        if not await registry.blob_exists(repo, mf.digest_of(data)):
            await registry.push_bytes(repo, data)
    return layer, config


def seed_manifest(layer: bytes, config: bytes, annotations: dict[str, str] | None = None) -> bytes:
    return mf.image_manifest(
        mf.Descriptor(mf.CONFIG, mf.digest_of(config), len(config)),
        [mf.Descriptor(mf.LAYER, mf.digest_of(layer), len(layer))],
        annotations,
    )


class ManifestRequests(Workload):
    """GET or HEAD of one manifest by tag, over many connections."""

    metric = Metric.REQ_S
    timed_with = "raw"
    repo = "bench/manifest"

    def __init__(self, method: str, count: int, connections: int, time_limit: float) -> None:
        self.method = method
        self.name = f"manifest-{method.lower()}-c{connections}"
        self.count, self.connections, self.time_limit = count, connections, time_limit

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "count": self.count, "connections": self.connections}

    def progress_total(self) -> tuple[int, str]:
        return self.count, "op"

    async def setup(self, ctx: Context) -> None:
        if not await ctx.registry.manifest_exists(self.repo, "latest"):
            layer, config = await seed_image(ctx.registry, ctx.content, self.repo)
            body = seed_manifest(layer, config)
            await ctx.registry.put_manifest(self.repo, "latest", body, mf.MANIFEST)

    async def run(self, ctx: Context, rec: Recorder) -> None:
        path = f"/v2/{self.repo}/manifests/latest"
        await timed_lookups(ctx, rec, self.method, path, self.count, self.connections)


class TagsList(Workload):
    """``GET /v2/<repo>/tags/list`` of a repository with ``tags`` tags, unpaged."""

    name = "tags-list"
    metric = Metric.REQ_S
    timed_with = "raw"
    repo = "bench/tags"

    def __init__(self, tags: int, count: int, connections: int, time_limit: float) -> None:
        self.tags, self.count, self.connections, self.time_limit = (
            tags,
            count,
            connections,
            time_limit,
        )

    def params(self) -> dict[str, Any]:
        return {"tags": self.tags, "count": self.count, "connections": self.connections}

    def progress_total(self) -> tuple[int, str]:
        return self.count, "op"

    async def _existing(self, registry: Registry) -> set[str]:
        status, body = await registry.get(f"/v2/{self.repo}/tags/list", 404)
        return set(json.loads(body).get("tags") or []) if status == 200 else set()

    async def setup(self, ctx: Context) -> None:
        registry = ctx.registry
        wanted = {f"t{i:04d}" for i in range(self.tags)}
        missing = sorted(wanted - await self._existing(registry))
        if not missing:
            return
        layer, config = await seed_image(registry, ctx.content, self.repo)

        async def tag(name: str) -> None:
            body = seed_manifest(layer, config, {"dockyard.bench.tag": name})
            await registry.put_manifest(self.repo, name, body, mf.MANIFEST)

        await gather_limited(SETUP_CONCURRENCY, [partial(tag, name) for name in missing])
        left = wanted - await self._existing(registry)
        if left:
            raise RuntimeError(f"setup: {count(len(left), 'tag')} still missing after the push")

    async def run(self, ctx: Context, rec: Recorder) -> None:
        path = f"/v2/{self.repo}/tags/list"
        await timed_lookups(ctx, rec, "GET", path, self.count, self.connections)


class Catalog(Workload):
    """``GET /v2/_catalog?n=1000`` on a registry holding ``repos`` repositories."""

    name = "catalog"
    metric = Metric.REQ_S
    timed_with = "raw"
    seed_repo = "bench/catalog-seed"

    def __init__(
        self, repos: int, page: int, count: int, connections: int, time_limit: float
    ) -> None:
        self.repos, self.page, self.count = repos, page, count
        self.connections, self.time_limit = connections, time_limit

    def params(self) -> dict[str, Any]:
        return {
            "repos": self.repos,
            "n": self.page,
            "count": self.count,
            "connections": self.connections,
        }

    def progress_total(self) -> tuple[int, str]:
        return self.count, "op"

    async def setup(self, ctx: Context) -> None:
        registry = ctx.registry
        layer, config = await seed_image(registry, ctx.content, self.seed_repo)
        body = seed_manifest(layer, config)

        async def ensure(repo: str) -> None:
            if await registry.manifest_exists(repo, "latest"):
                return
            for data in (layer, config):
                if not await registry.mount(repo, mf.digest_of(data), self.seed_repo):
                    await registry.push_bytes(repo, data)
            await registry.put_manifest(repo, "latest", body, mf.MANIFEST)

        repos = [f"bench/catalog/r{i:04d}" for i in range(self.repos)]
        await gather_limited(SETUP_CONCURRENCY, [partial(ensure, r) for r in repos])

    async def run(self, ctx: Context, rec: Recorder) -> None:
        path = f"/v2/_catalog?n={self.page}"
        await timed_lookups(ctx, rec, "GET", path, self.count, self.connections)
