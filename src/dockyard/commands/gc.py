"""``dockyard gc CONFIG [--dry-run]``: one garbage-collection pass over every repository."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from dockyard.commands.common import EXIT_CONFIG, load_or_report
from dockyard.storage.gc import GcReport


def _print(report: GcReport, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    for repo, digest, freed in report.blobs:
        print(f"{verb} blob {repo}@{digest} ({freed} bytes freed)")
    for repo, digest in report.manifests:
        print(f"{verb} untagged manifest {repo}@{digest}")
    for repo, session in report.uploads:
        print(f"{verb} idle upload {repo}/{session}")
    for repo, why in report.skipped:
        print(f"kept everything in {repo}: {why}")
    print(
        f"{verb} {len(report.blobs)} blobs, {len(report.manifests)} manifests, "
        f"{len(report.uploads)} uploads; {report.bytes_freed} bytes freed"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dockyard.server import build_store
    from dockyard.storage.gc import stop_walker

    config = load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG

    async def collect() -> GcReport:
        store = build_store(config)
        await store.catalog.load()
        repos = sum(len(store.repos_of(s)) for s in store.roots() if s.collector)
        with tqdm(total=repos, unit="repo", desc="gc", file=sys.stderr) as bar:

            def tick(_: str) -> None:
                bar.update()

            return await store.collect_all(dry_run=args.dry_run, progress=tick)

    try:
        _print(asyncio.run(collect()), args.dry_run)
    finally:
        stop_walker()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("gc", help="one garbage-collection pass over every repository")
    p.add_argument("config", type=Path)
    p.add_argument("--dry-run", action="store_true", help="report what would go, remove nothing")
    p.set_defaults(func=run)
