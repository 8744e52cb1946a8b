"""What ``serve`` checks before it starts, and ``verify`` checks too.

A config can be valid and still not servable on this machine: its log folder missing,
its storage root in a folder this user may not write, its htpasswd file unreadable. These
are found here, each named by its key, so ``verify`` and ``serve`` refuse the same configs
with the same one-line message, and a user never meets a traceback for them. The checks
only look (``stat``, ``access``); they create nothing, so ``verify`` has no side effects.
``serve`` then creates the roots with :func:`create_roots`, which names the key too when
the filesystem still refuses (a read-only mount, ``/proc``).

A failure past these checks that the user can still cause (a busy port, a damaged
database under the root) is raised as :class:`StartupError`, whose message is the one
line the command prints.
"""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.app.storage_roots import s3_settings
from dockyard.config import Config
from dockyard.storage.s3settings import bucket_problem

#: Exit status for a config (or flag) that cannot be used, as zot's verify uses.
EXIT_CONFIG = 2
#: Exit status for a start-up failure that is not the config's: the listener.
EXIT_START = 1

ROOT_FLAG = "--root"


class StartupError(Exception):
    """The server cannot start for a reason the user can fix; ``str()`` is the one line."""

    def __init__(self, message: str, status: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.status = status


def describe(exc: OSError) -> str:
    """``No such file or directory: /path``: the reason first, then what it is about."""
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def _stat_dir(path: Path) -> tuple[bool, str | None]:
    """(exists, why it cannot be used as a folder) without creating anything."""
    try:
        exists = path.exists()
    except OSError as exc:  # a parent we may not enter
        return True, f"cannot look at {path}: {exc.strerror}"
    if not exists:
        return False, None
    if not path.is_dir():
        return True, f"{path} is not a folder"
    return True, None


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        try:
            if parent.exists():
                return parent
        except OSError:
            return parent
    return Path("/")


def folder_problem(path: Path) -> str | None:
    """Why ``serve`` could not use or create the folder ``path``; None when it can."""
    exists, why = _stat_dir(path)
    if why is not None:
        return why
    if exists:
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return f"{path} is not readable and writable by this user"
        return None
    parent = _nearest_existing(path)
    if not parent.is_dir():
        return f"cannot create {path}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: {parent} is not writable by this user"
    return None


def file_problem(path: Path) -> str | None:
    """Why ``serve`` could not append to the file ``path`` (creating it); None when it can."""
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        return f"cannot look at {path}: {exc.strerror}"
    if st is not None:
        if path.is_dir():
            return f"{path} is a folder"
        if not os.access(path, os.W_OK):
            return f"{path} is not writable by this user"
        return None
    folder = path.parent
    exists, why = _stat_dir(folder)
    if why is not None:
        return why
    if not exists:
        return f"the folder {folder} does not exist (create it, or choose another path)"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create {path}: the folder {folder} is not writable by this user"
    return None


def roots(config: Config, root_flag: bool = False) -> list[tuple[str, Path]]:
    """(key, folder) of every storage root; the key is ``--root`` when the flag set it."""
    storage = config.storage
    found = [(ROOT_FLAG if root_flag else "storage.rootDirectory", storage.root_directory)]
    for prefix, sub in storage.sub_paths.items():
        found.append((f"storage.subPaths.{prefix}.rootDirectory", sub.root_directory))
    return found


def buckets(config: Config) -> list[tuple[str, str | None]]:
    """(key, why its bucket cannot be used) of every ``storageDriver``: a HeadBucket each."""
    storage = config.storage
    drivers = [("storage.storageDriver", storage.storage_driver)]
    drivers += [
        (f"storage.subPaths.{prefix}.storageDriver", sub.storage_driver)
        for prefix, sub in storage.sub_paths.items()
    ]
    return [
        (key, bucket_problem(settings))
        for key, driver in drivers
        if (settings := s3_settings(driver)) is not None
    ]


def problems(config: Config, root_flag: bool = False, reach: bool = False) -> list[str]:
    """Everything that would stop ``serve`` on this machine, each starting with its key.

    ``reach`` (``verify``): also ask each bucket whether it answers. ``serve`` does not
    wait for it: a bucket down at start is what ``/readyz`` reports until it answers,
    so a restart during an outage recovers on its own.
    """
    found = []
    if reach:
        found += [f"{key}: {why}" for key, why in buckets(config) if why is not None]
    for key, root in roots(config, root_flag):
        why = folder_problem(Path(root).absolute())
        if why is not None:
            found.append(f"{key}: {why}")
    for key, value in (("log.output", config.log.output), ("log.audit", config.log.audit)):
        if value:
            why = file_problem(Path(value).absolute())
            if why is not None:
                found.append(f"{key}: {why}")
    htpasswd = config.http.auth.htpasswd if config.http.auth is not None else None
    if htpasswd is not None and not os.access(htpasswd.path, os.R_OK):
        found.append(f"http.auth.htpasswd.path: {htpasswd.path} is not readable by this user")
    return found


def missing_roots(config: Config, root_flag: bool = False) -> list[str]:
    """Roots that are not there: the offline commands report them rather than create them."""
    found = []
    for key, root in roots(config, root_flag):
        exists, why = _stat_dir(Path(root).absolute())
        if why is not None:
            found.append(f"{key}: {why}")
        elif not exists:
            found.append(f"{key}: {Path(root).absolute()} does not exist")
    return found


def create_roots(config: Config, root_flag: bool = False) -> None:
    """Create every storage root ``serve`` needs; StartupError naming the key if one fails."""
    for key, root in roots(config, root_flag):
        path = Path(root).absolute()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"{key}: cannot create {path}: {describe(exc)}") from exc
