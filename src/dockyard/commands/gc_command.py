"""``dockyard gc [CONFIG] [--root DIR] [--dry-run]``: one GC pass over every repository.

CONFIG and ``--root`` work as for ``serve`` (default root ``./dockyard-data``). A root
that does not exist is reported (exit 2), never created. ``--dry-run`` writes nothing at
all: the store is opened read-only (no SQLite file is opened, nothing is created).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dockyard.commands.config_args import EXIT_CONFIG, add_root_flag, offline_config
from dockyard.storage.gc import GcReport
from dockyard.util.plural import count


def _print(report: GcReport, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    for repo, digest, freed in report.blobs:
        print(f"{verb} blob {repo}@{digest} ({count(freed, 'byte')} freed)")
    for repo, digest in report.manifests:
        print(f"{verb} untagged manifest {repo}@{digest}")
    for repo, session in report.uploads:
        print(f"{verb} idle upload {repo}/{session}")
    for digest, freed in report.shared:
        print(f"{verb} shared copy {digest}, no repository names it ({count(freed, 'byte')} freed)")
    for digest, reference in report.entries:
        print(f"{verb} leftover entry of shared copy {digest}: no reference {reference}")
    for upload in report.aborted:
        print(f"{verb} abandoned multipart upload {upload}")
    for repo, why in report.skipped:
        print(f"kept everything in {repo}: {why}")
    print(
        f"{verb} {count(len(report.blobs), 'blob')}, "
        f"{count(len(report.manifests), 'manifest')}, {count(len(report.uploads), 'upload')}; "
        f"{count(report.bytes_freed, 'byte')} freed"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dockyard.app.storage_roots import build_store
    from dockyard.storage.workers import stop_walker

    config = offline_config(args.config, args.root)
    if config is None:
        return EXIT_CONFIG

    async def collect() -> GcReport:
        store = build_store(config, read_only=args.dry_run)
        try:
            await store.catalog.load()
            repos = sum(len(store.repos_of(s)) for s in store.roots() if s.collector)
            with tqdm(total=repos, unit="repo", desc="gc", file=sys.stderr) as bar:

                def tick(_: str) -> None:
                    bar.update()

                return await store.collect_all(dry_run=args.dry_run, progress=tick)
        finally:
            store.close()

    try:
        _print(asyncio.run(collect()), args.dry_run)
    finally:
        stop_walker()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("gc", help="one garbage-collection pass over every repository")
    add_root_flag(p)
    p.add_argument("--dry-run", action="store_true", help="report what would go, remove nothing")
    p.set_defaults(func=run)
