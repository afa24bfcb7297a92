"""``python -m riad`` is the ``riad`` command."""

from riad.cli import main

raise SystemExit(main())
