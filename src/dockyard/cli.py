"""The ``dockyard`` command line: each subcommand lives in ``dockyard.commands``."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from dockyard import __version__
from dockyard.commands import (
    bench_command,
    gc_command,
    passwd_command,
    scrub_command,
    serve_command,
    sync_command,
    verify_command,
)

COMMANDS = (
    serve_command,
    verify_command,
    gc_command,
    scrub_command,
    bench_command,
    passwd_command,
    sync_command,
)


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml's), else the package's own."""
    try:
        return version("dockyard")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return __version__


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard", description="OCI-native container registry")
    p.add_argument("--version", action="version", version=f"dockyard {installed_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))
