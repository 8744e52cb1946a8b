"""Configuration in zot's format (JSON or YAML), with defaults that serve without a file.

Keys dockyard implements are typed and validated; a bad value stops start-up with the
key's dotted path and what is wrong. Keys from zot's format that dockyard does not
implement yet are reported as warnings and otherwise ignored, so a zot config file loads.
One module per section or two; the shared base and durations are in ``section``.
"""

from dockyard.config.loader import ConfigError, load_config
from dockyard.config.model import Config
from dockyard.config.section import parse_duration

__all__ = ["Config", "ConfigError", "load_config", "parse_duration"]
