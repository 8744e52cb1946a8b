"""One module per ``dockyard`` subcommand, each with ``register(subparsers)``."""
