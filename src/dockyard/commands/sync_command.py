"""``dockyard sync CONFIG [--once]``: periodic sync from the command line.

Runs the passes the server would run in the background, over the registries of
``extensions.sync`` that have a ``pollInterval`` (every registry when none has one), with
a progress bar of images. ``--once`` stops after one pass; otherwise it repeats every
``pollInterval``. Exit status 1 when an image could not be copied.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from dockyard.commands.config_args import EXIT_CONFIG, load_or_report


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dockyard.app.storage_roots import build_store
    from dockyard.config.sync import DEFAULT_SYNC_WAIT
    from dockyard.ext.sync import build_mirror
    from dockyard.ext.sync.credentials import CredentialsError
    from dockyard.storage.workers import stop_walker

    config = load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG

    async def passes() -> int:
        store = build_store(config)
        await store.catalog.load()
        mirror = build_mirror(config, store)
        if mirror is None:
            print("dockyard: the config has no extensions.sync registries", file=sys.stderr)
            return EXIT_CONFIG
        registries = mirror.periodic.polled() or mirror.registries
        failed = 0
        try:
            while True:
                for registry in registries:
                    planned = await mirror.periodic.plan(registry)
                    total = len(planned[1]) if planned else 0
                    with tqdm(total=total, unit="image", desc="sync", file=sys.stderr) as bar:

                        def tick(_: str) -> None:
                            bar.update()

                        report = await mirror.periodic.run_pass(registry, tick, planned)
                    failed += report.failed + report.unreachable
                    if report.unreachable:
                        print(f"{registry.settings.urls[0]}: no upstream URL answered")
                    print(
                        f"{registry.settings.urls[0]}: {report.images} images, "
                        f"{report.copied} copied, {report.skipped} up to date, "
                        f"{report.failed} failed, {report.bytes} bytes"
                    )
                if args.once:
                    return 1 if failed else 0
                await asyncio.sleep(
                    min(r.settings.poll_interval or DEFAULT_SYNC_WAIT for r in registries)
                )
        finally:
            await mirror.close()

    try:
        return asyncio.run(passes())
    except CredentialsError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    finally:
        stop_walker()


def register(sub: Any) -> None:
    p = sub.add_parser("sync", help="copy images from the upstreams of extensions.sync")
    p.add_argument("config", type=Path)
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(func=run)
