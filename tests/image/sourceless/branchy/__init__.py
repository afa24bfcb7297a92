"""A package that imports more when its own source cannot be read (as anyio does)."""

import inspect
import sys

try:
    inspect.getsource(sys.modules[__name__])
except (OSError, TypeError):
    from branchy import eager  # noqa: F401  (only without source)

    SOURCE = False
else:
    SOURCE = True
