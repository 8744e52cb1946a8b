"""What every subcommand that reads a config shares."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dockyard.app.preflight import EXIT_CONFIG, missing_roots, problems
from dockyard.config import Config, ConfigError, load_config

__all__ = [
    "EXIT_CONFIG",
    "add_root_flag",
    "load_or_report",
    "offline_config",
    "report",
    "servable",
]


def report(found: list[str]) -> bool:
    """Print ``found`` as one line on stderr; True when there was nothing to print."""
    if found:
        print(f"dockyard: {'; '.join(found)}", file=sys.stderr)
    return not found


def load_or_report(path: Path | None) -> Config | None:
    """The config at ``path`` (embedded defaults for None); None after printing why not."""
    try:
        config, warnings = load_config(path)
    except ConfigError as exc:
        print(f"dockyard: invalid config: {exc}", file=sys.stderr)
        return None
    for warning in warnings:
        print(f"dockyard: warning: {warning}", file=sys.stderr)
    return config


def servable(config: Config, root_flag: bool = False, reach: bool = False) -> bool:
    """The checks ``serve`` makes before it starts (``verify`` makes them too, and with
    ``reach`` asks each bucket too); printed."""
    return report(problems(config, root_flag, reach))


def add_root_flag(parser: argparse.ArgumentParser) -> None:
    """``CONFIG`` optional and ``--root DIR``, as ``serve`` takes them."""
    parser.add_argument(
        "config", nargs="?", type=Path, help="zot-format config, JSON or YAML (default: none)"
    )
    parser.add_argument(
        "--root", type=Path, help="storage root, over the config's (default ./dockyard-data)"
    )


def offline_config(path: Path | None, root: Path | None) -> Config | None:
    """The config an offline command (``gc``, ``scrub``) works on: loaded, ``--root``
    applied (the flag wins over the file), and every root existing, since an offline
    command never makes one. None after printing why not."""
    config = load_or_report(path)
    if config is None:
        return None
    if root is not None:
        config.storage.root_directory = root
    return config if report(missing_roots(config, root is not None)) else None
