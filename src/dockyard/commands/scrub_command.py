"""``dockyard scrub [CONFIG] [--root DIR] [--repo R]``: re-hash every blob, check references.

CONFIG and ``--root`` work as for ``serve`` (default root ``./dockyard-data``); a root that
does not exist is reported (exit 2), never created.

Exits 0 when everything checked out, 1 when anything is corrupt, missing, of the wrong size
or unreadable (each is printed on its own line), 2 for a config or repository that cannot
be used. Corrupt files are quarantined (moved under ``ROOT/_dockyard/quarantine/``) so a
running server never serves them, unless ``--dry-run`` is given. Safe to run beside a
running server: it reads, and its only writes are the quarantine moves and verified stamps.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dockyard.commands.config_args import EXIT_CONFIG, add_root_flag, offline_config
from dockyard.storage.scrubber import ScrubReport
from dockyard.util.plural import count

EXIT_PROBLEMS = 1


def _print(report: ScrubReport) -> None:
    for problem in report.problems:
        print(problem)
    verdict = "OK" if report.ok else count(len(report.problems), "problem")
    print(
        f"scrubbed {count(report.repos, 'repository', 'repositories')}: "
        f"{count(report.manifests, 'manifest')}, {count(report.blobs, 'blob')}, "
        f"{count(report.bytes, 'byte')} hashed in {report.seconds:.1f}s: {verdict}"
    )
    if report.quarantined:
        print(f"quarantined {count(len(report.quarantined), 'file')}")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dockyard.app.storage_roots import build_store
    from dockyard.oci.names import InvalidName, validate_name
    from dockyard.storage.scrubber import Scrubber
    from dockyard.storage.workers import stop_walker

    config = offline_config(args.config, args.root)
    if config is None:
        return EXIT_CONFIG
    repos: list[str] | None = None
    if args.repo:
        try:
            repos = [validate_name(name) for name in args.repo]
        except InvalidName as exc:
            print(f"dockyard: {exc}", file=sys.stderr)
            return EXIT_CONFIG

    async def scrub() -> ScrubReport | None:
        store = build_store(config)
        try:
            await store.catalog.load()
            unknown = [name for name in repos or () if name not in store.catalog.names()]
            if unknown:
                print(f"dockyard: no repository {', '.join(unknown)}", file=sys.stderr)
                return None
            scrubber = Scrubber(store, quarantine=not args.dry_run)
            with tqdm(unit="B", unit_scale=True, desc="scrub", file=sys.stderr) as bar:

                def total(nbytes: int) -> None:
                    bar.reset(total=nbytes)

                def advance(nbytes: int) -> None:
                    bar.update(nbytes)

                return await scrubber.run(repos, on_total=total, on_progress=advance)
        finally:
            store.close()

    try:
        report = asyncio.run(scrub())
    finally:
        stop_walker()
    if report is None:
        return EXIT_CONFIG
    _print(report)
    return 0 if report.ok else EXIT_PROBLEMS


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scrub", help="re-hash every blob and manifest, check references; exit 1 on problems"
    )
    add_root_flag(p)
    p.add_argument(
        "--repo",
        action="append",
        metavar="R",
        help="scrub only this repository (repeat for several)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="report corrupt files, do not quarantine them"
    )
    p.set_defaults(func=run)
