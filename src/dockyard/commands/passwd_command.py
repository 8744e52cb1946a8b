"""``dockyard passwd FILE USER``: add or update a bcrypt entry in an htpasswd file.

The password is prompted for twice on a terminal, or read as the first line of standard
input otherwise (``echo "$PW" | dockyard passwd htpasswd alice``), so scripts never put
it on a command line where ``ps`` would show it. ``--delete`` removes the user. The
server re-reads the file on its own when it changes: no restart.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from dockyard.auth.htpasswd import DEFAULT_COST, delete_user, set_password

EXIT_USAGE = 2


def _read_password() -> str | None:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            print("dockyard: the passwords differ", file=sys.stderr)
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    if args.delete:
        if not delete_user(args.file, args.user):
            print(f"dockyard: {args.user!r} is not in {args.file}", file=sys.stderr)
            return 1
        print(f"dockyard: removed {args.user!r} from {args.file}")
        return 0
    password = _read_password()
    if password is None:
        return EXIT_USAGE
    if not password:
        print("dockyard: refusing an empty password", file=sys.stderr)
        return EXIT_USAGE
    try:
        new = set_password(args.file, args.user, password, args.cost)
    except ValueError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"dockyard: {'added' if new else 'updated'} {args.user!r} in {args.file}")
    return 0


def _cost(text: str) -> int:
    if not text.isdigit() or not 4 <= int(text) <= 31:
        raise argparse.ArgumentTypeError(f"must be a bcrypt cost from 4 to 31, got {text!r}")
    return int(text)


def register(sub: Any) -> None:
    p = sub.add_parser("passwd", help="add or update a user in an htpasswd file (bcrypt)")
    p.add_argument("file", type=Path, help="htpasswd file (created when missing)")
    p.add_argument("user")
    p.add_argument(
        "--cost", type=_cost, default=DEFAULT_COST, help=f"bcrypt cost (default {DEFAULT_COST})"
    )
    p.add_argument("--delete", action="store_true", help="remove the user instead")
    p.set_defaults(func=run)
