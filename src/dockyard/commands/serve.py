"""``dockyard serve [CONFIG]``: serve the registry, on embedded defaults without CONFIG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dockyard.commands.common import EXIT_CONFIG, load_or_report
from dockyard.config import Config


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from dockyard.server import serve

    config = load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG

    def overrides(config: Config) -> Config:
        """The flags win over the file, at start and on every reload."""
        if args.address is not None:
            config.http.address = args.address
        if args.port is not None:
            config.http.port = args.port
        if args.root is not None:
            config.storage.root_directory = args.root
        return config

    serve(overrides(config), args.config, overrides)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the registry (embedded defaults without CONFIG)")
    p.add_argument("config", nargs="?", type=Path, help="zot-format config, JSON or YAML")
    p.add_argument("--address", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, help="listen port (default 5000)")
    p.add_argument("--root", type=Path, help="storage root (default ./dockyard-data)")
    p.set_defaults(func=run)
