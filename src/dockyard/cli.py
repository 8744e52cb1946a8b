"""The ``dockyard`` command: serve, verify, gc."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dockyard.config import Config, ConfigError, load_config

EXIT_CONFIG = 2


def _load(path: Path | None) -> Config | None:
    try:
        config, warnings = load_config(path)
    except ConfigError as exc:
        print(f"dockyard: invalid config: {exc}", file=sys.stderr)
        return None
    for warning in warnings:
        print(f"dockyard: warning: {warning}", file=sys.stderr)
    return config


def _serve(args: argparse.Namespace) -> int:
    from dockyard.server import serve

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.address is not None:
        config.http.address = args.address
    if args.port is not None:
        config.http.port = args.port
    if args.root is not None:
        config.storage.root_directory = args.root
    serve(config)
    return 0


def _verify(args: argparse.Namespace) -> int:
    if _load(args.config) is None:
        return EXIT_CONFIG
    print(f"dockyard: {args.config} is valid")
    return 0


def _gc(args: argparse.Namespace) -> int:
    """One GC pass over every repository, as ``dockyard gc CONFIG [--dry-run]``."""
    import asyncio

    from tqdm import tqdm

    from dockyard.server import build_store

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG

    async def run() -> int:
        store = build_store(config)
        await store.catalog.load()
        repos = sum(len(store.repos_of(s)) for s in store.roots() if s.collector)
        with tqdm(total=repos, unit="repo", desc="gc", file=sys.stderr) as bar:

            def tick(_: str) -> None:
                bar.update()

            report = await store.collect_all(dry_run=args.dry_run, progress=tick)
        verb = "would remove" if args.dry_run else "removed"
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
        return 0

    from dockyard.storage.gc import stop_walker

    try:
        return asyncio.run(run())
    finally:
        stop_walker()


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard", description="OCI-native container registry")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the registry (embedded defaults without CONFIG)")
    s.add_argument("config", nargs="?", type=Path, help="zot-format config, JSON or YAML")
    s.add_argument("--address", help="listen address (default 127.0.0.1)")
    s.add_argument("--port", type=_port, help="listen port (default 5000)")
    s.add_argument("--root", type=Path, help="storage root (default ./dockyard-data)")
    s.set_defaults(func=_serve)
    v = sub.add_parser("verify", help="check a config file and exit 0 (valid) or 2")
    v.add_argument("config", type=Path)
    v.set_defaults(func=_verify)
    g = sub.add_parser("gc", help="one garbage-collection pass over every repository")
    g.add_argument("config", type=Path)
    g.add_argument("--dry-run", action="store_true", help="report what would go, remove nothing")
    g.set_defaults(func=_gc)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))
