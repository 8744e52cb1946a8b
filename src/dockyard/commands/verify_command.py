"""``dockyard verify CONFIG``: check a config as ``serve`` would, exit 0 or 2.

The same checks ``serve`` makes before it starts: the config's keys and values, then the
files and folders it names (see ``dockyard.app.preflight``); each ``storageDriver``'s
bucket must answer a HeadBucket. Nothing is created. Then each ``cacheDriver``'s Redis
must answer a PING: ``serve`` itself starts without it (and stays not ready until it
answers), but a config whose Redis is unreachable from here is worth knowing about
before it is deployed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dockyard.app.storage_roots import cache_drivers
from dockyard.commands.config_args import EXIT_CONFIG, load_or_report, report, servable


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None or not servable(config, reach=True):
        return EXIT_CONFIG
    drivers = list(cache_drivers(config).values())
    unreachable = []
    if drivers:
        from dockyard.storage.shared.redis_coordination import ping  # only with a cacheDriver

        unreachable = [f"{key}.url: {why}" for key, d in drivers if (why := ping(d.url))]
    if not report(unreachable):
        return EXIT_CONFIG
    print(f"dockyard: {args.config} is valid")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check a config file and exit 0 (valid) or 2")
    p.add_argument("config", type=Path)
    p.set_defaults(func=run)
