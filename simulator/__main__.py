"""``python -m simulator``: the ``bitserial`` command line."""

from .cli import main

raise SystemExit(main())
