"""``python -m dockyard`` runs the command line, as the ``dockyard`` script does."""

from dockyard.cli import main

raise SystemExit(main())
