"""``python -m stzoo.tools COMMAND``: the maintainers' command line (the same as ``stzoo-maint COMMAND``)."""

from stzoo.tools.cli import main

raise SystemExit(main())
