"""``dockyard serve [CONFIG]``: serve the registry, on embedded defaults without CONFIG.

Exit status: 0 after a clean stop, 2 when the config, a flag, or a path they name cannot
be used (the key is named), 1 when the listener cannot open (a busy port).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dockyard.app.preflight import StartupError, create_roots
from dockyard.commands.config_args import EXIT_CONFIG, load_or_report, servable
from dockyard.config import Config


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 256:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 256, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from dockyard.app.listen import close_all
    from dockyard.app.server import listen, serve
    from dockyard.app.supervisor import supervise, worker_count
    from dockyard.storage.changes import set_writer

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
        if args.workers is not None:
            config.http.workers = args.workers
        return config

    config = overrides(config)
    root_flag = args.root is not None
    if not servable(config, root_flag):
        return EXIT_CONFIG
    try:
        sockets = listen(config)  # first: a busy port must not leave a root behind
        try:
            create_roots(config, root_flag)
        except StartupError:
            close_all(sockets)
            raise
        workers = worker_count(config)
        if workers > 1:
            return supervise(config, args.config, overrides, sockets, workers)
        set_writer(0)  # the one worker: slot 0 of each root's change counter
        serve(config, args.config, overrides, sockets)
    except StartupError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return exc.status
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the registry (embedded defaults without CONFIG)")
    p.add_argument("config", nargs="?", type=Path, help="zot-format config, JSON or YAML")
    p.add_argument("--address", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, help="listen port (default 5000)")
    p.add_argument("--root", type=Path, help="storage root (default ./dockyard-data)")
    p.add_argument(
        "--workers",
        type=_workers,
        help="worker processes (default: http.workers, else one per CPU)",
    )
    p.set_defaults(func=run)
