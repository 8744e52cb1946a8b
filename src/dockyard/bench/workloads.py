"""The named workloads, at full size and at ``--quick`` size, and how ``--workloads`` picks.

Full sizes follow project issue 5: blobs of 1 MiB to 1 GiB at concurrency 1 and 8, 20
images of 5 layers sharing a base, manifests by tag over 64 connections, a 1000-tag
list, and ``_catalog?n=1000`` over 1000 repositories. Quick sizes keep the same names
(except the 100 MiB and 1 GiB blobs, which have no quick form) and finish in seconds.
"""

from __future__ import annotations

import fnmatch

from dockyard.bench.blob_workloads import GiB, KiB, MiB, PullBlobs, PushBlobs
from dockyard.bench.images import PushImages
from dockyard.bench.lookups import Catalog, ManifestRequests, TagsList
from dockyard.bench.workload import Workload

#: (size, count at concurrency 1, count at concurrency 8) per blob size, pushes then pulls.
_FULL_PUSH = ((MiB, 100, 200), (10 * MiB, 20, 40), (100 * MiB, 5, 8), (GiB, 1, 8))
_FULL_PULL = ((MiB, 200, 400), (10 * MiB, 30, 60), (100 * MiB, 5, 16), (GiB, 2, 8))
_QUICK_PUSH = ((MiB, 32, 64), (10 * MiB, 6, 16))
_QUICK_PULL = ((MiB, 100, 256), (10 * MiB, 20, 64))


def _blob_workloads(
    push: tuple[tuple[int, int, int], ...],
    pull: tuple[tuple[int, int, int], ...],
    limit: float,
) -> list[Workload]:
    found: list[Workload] = []
    for chunked in (False, True):
        for size, c1, c8 in push:
            found += [
                PushBlobs(size, c1, 1, chunked, limit),
                PushBlobs(size, c8, 8, chunked, limit),
            ]
    for size, c1, c8 in pull:
        found += [PullBlobs(size, c1, 1, limit), PullBlobs(size, c8, 8, limit)]
    return found


def full() -> list[Workload]:
    return [
        *_blob_workloads(_FULL_PUSH, _FULL_PULL, limit=300),
        PushImages(images=20, layers=5, base_size=16 * MiB, layer_size=4 * MiB, time_limit=300),
        # Counts let the faster server run for a second or more; time limits keep the slower
        # one to about 15 s. Rates compare either way.
        ManifestRequests("GET", count=30000, connections=64, time_limit=15),
        ManifestRequests("HEAD", count=30000, connections=64, time_limit=15),
        TagsList(tags=1000, count=15000, connections=8, time_limit=15),
        Catalog(repos=1000, page=1000, count=5000, connections=8, time_limit=15),
    ]


def quick() -> list[Workload]:
    return [
        *_blob_workloads(_QUICK_PUSH, _QUICK_PULL, limit=20),
        PushImages(images=5, layers=5, base_size=2 * MiB, layer_size=256 * KiB, time_limit=20),
        ManifestRequests("GET", count=5000, connections=64, time_limit=10),
        ManifestRequests("HEAD", count=5000, connections=64, time_limit=10),
        TagsList(tags=100, count=1000, connections=8, time_limit=10),
        Catalog(repos=100, page=1000, count=300, connections=8, time_limit=10),
    ]


def select(patterns: list[str] | None, quick_mode: bool) -> list[Workload]:
    """The workloads named by ``patterns`` (globs allowed), in catalog order; all if None.

    Raises ValueError naming any pattern that matches nothing, so a typo is never a
    silently shorter run.
    """
    available = quick() if quick_mode else full()
    if not patterns:
        return available
    unmatched = [p for p in patterns if not any(fnmatch.fnmatch(w.name, p) for w in available)]
    if unmatched:
        mode = " in --quick" if quick_mode else ""
        names = ", ".join(w.name for w in available)
        raise ValueError(f"no workload{mode} matches {', '.join(unmatched)} (have: {names})")
    return [w for w in available if any(fnmatch.fnmatch(w.name, p) for p in patterns)]
