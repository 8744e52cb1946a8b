"""``dockyard verify CONFIG``: check a config, exit 0 or 2."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dockyard.commands.common import EXIT_CONFIG, load_or_report


def run(args: argparse.Namespace) -> int:
    if load_or_report(args.config) is None:
        return EXIT_CONFIG
    print(f"dockyard: {args.config} is valid")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check a config file and exit 0 (valid) or 2")
    p.add_argument("config", type=Path)
    p.set_defaults(func=run)
