"""``python -m sgap_plugins.cli`` runs the ``sgap`` command."""

from . import main

raise SystemExit(main())
