"""Whole-image pushes in parallel, every image sharing one base layer.

Each image goes as a client pushes it: all its layers at once (HEAD, and POST + PUT when
the registry lacks the blob), then its config, then the manifest by tag. All images start
together, so the base layer's uploads race: every client sees 404 on its HEAD and sends
the same digest. The figure is the wall time until the last manifest is in; the run's
counters say how many layer uploads were sent and how many a HEAD let the client skip.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from dockyard.bench import manifest_json as mf
from dockyard.bench.content import Blob
from dockyard.bench.stats import Recorder
from dockyard.bench.workload import Context, Metric, Workload, gather_limited, run_pool


class PushImages(Workload):
    """``images`` images of ``layers`` layers (one shared base), pushed all at once."""

    name = "images-shared-base"
    metric = Metric.WALL_S

    def __init__(
        self, images: int, layers: int, base_size: int, layer_size: int, time_limit: float
    ) -> None:
        self.images, self.layers = images, layers
        self.base_size, self.layer_size = base_size, layer_size
        self.connections = images * layers
        self.time_limit = time_limit

    @staticmethod
    def repo(image: int) -> str:
        return f"bench/images/{image:02d}"

    def _layers(self, rep: int, image: int) -> list[Blob]:
        base = Blob(f"images/r{rep}/base", self.base_size)
        own = [Blob(f"images/r{rep}/{image}/{j}", self.layer_size) for j in range(1, self.layers)]
        return [base, *own]

    def blobs(self, rep: int) -> list[Blob]:
        return [b for i in range(self.images) for b in self._layers(rep, i)]

    def params(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "layers": self.layers,
            "base_size": self.base_size,
            "layer_size": self.layer_size,
        }

    def progress_total(self) -> tuple[int, str]:
        return self.images, "op"

    def _image(self, ctx: Context, image: int) -> tuple[list[Blob], bytes, bytes]:
        """Layers, config and manifest of one image: the same bytes in run and cleanup."""
        layers = self._layers(ctx.rep, image)
        config = mf.config(f"{ctx.content.run_id}/r{ctx.rep}/{image}", len(layers))
        descriptors = [mf.Descriptor(mf.LAYER, ctx.content.known_digest(b), b.size) for b in layers]
        config_desc = mf.Descriptor(mf.CONFIG, mf.digest_of(config), len(config))
        return layers, config, mf.image_manifest(config_desc, descriptors)

    async def run(self, ctx: Context, rec: Recorder) -> None:
        registry, content = ctx.registry, ctx.content

        async def layer(repo: str, blob: Blob) -> tuple[int, int]:
            if await registry.blob_exists(repo, content.known_digest(blob)):
                rec.count("layer_skips")
                return 1, 0
            rec.count("layer_uploads")
            return 1 + await registry.push_monolithic(repo, blob), blob.size

        async def push(image: int) -> tuple[int, int]:
            repo = self.repo(image)
            layers, config, manifest = self._image(ctx, image)
            done = await asyncio.gather(*(layer(repo, b) for b in layers))
            requests, nbytes = sum(r for r, _ in done), sum(n for _, n in done)
            await registry.push_bytes(repo, config)
            await registry.put_manifest(repo, f"r{ctx.rep}", manifest, mf.MANIFEST)
            return requests + 3, nbytes + len(config)

        await run_pool(ctx, rec, self.images, self.images, push)

    async def cleanup(self, ctx: Context) -> None:
        registry = ctx.registry
        jobs = []
        for image in range(self.images):
            repo = self.repo(image)
            layers, config, manifest = self._image(ctx, image)
            jobs.append(partial(registry.delete_manifest, repo, mf.digest_of(manifest)))
            digests = [ctx.content.known_digest(b) for b in layers] + [mf.digest_of(config)]
            jobs += [partial(registry.delete_blob, repo, d) for d in digests]
        await gather_limited(8, jobs)
