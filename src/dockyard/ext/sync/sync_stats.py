"""Counters of mirroring work, read by the metrics extension at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric


@dataclass
class SyncStats:
    """What the mirror fetched since start: from on-demand misses and periodic passes."""

    images: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    #: Content refused because the upstream's bytes did not match their digest.
    refused: int = 0
    errors: int = 0
    passes: int = 0
    on_demand: int = 0

    def metrics(self) -> Iterator[Metric]:
        from dockyard.ext.metrics import counter

        doc = {
            "images": "Images copied by periodic sync",
            "manifests": "Manifests fetched from upstreams",
            "blobs": "Blobs fetched from upstreams",
            "bytes": "Blob bytes fetched from upstreams",
            "refused": "Upstream content refused: bytes did not match the digest",
            "errors": "Images periodic sync could not copy",
            "passes": "Periodic sync passes completed",
            "on_demand": "Manifests fetched on demand",
        }
        for key, text in doc.items():
            yield counter(f"dockyard_sync_{key}", text, float(getattr(self, key)))
