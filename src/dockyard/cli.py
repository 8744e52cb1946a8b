"""The ``dockyard`` command line: each subcommand lives in ``dockyard.commands``."""

from __future__ import annotations

import argparse

from dockyard.commands import bench, gc, passwd, scrub, serve, sync, verify

COMMANDS = (serve, verify, gc, scrub, bench, passwd, sync)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard", description="OCI-native container registry")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))
