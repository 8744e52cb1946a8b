"""What every subcommand that reads a config shares."""

from __future__ import annotations

import sys
from pathlib import Path

from dockyard.config import Config, ConfigError, load_config

#: Exit status for a config that cannot be used, as zot's verify uses.
EXIT_CONFIG = 2


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
