"""A traced start-up: imports branchy and anyio, notes what it could read of sources."""

import linecache
import os

import anyio  # noqa: F401
import branchy

try:
    with open(branchy.__file__) as handle:
        own = "readable"
except FileNotFoundError:
    own = "missing"
facts = os.environ["RIAD_TRACE_FACTS"]
with open(facts, "a") as out:
    out.write(f"source={branchy.SOURCE}\n")
    out.write(f"open={own}\n")
    out.write(f"linecache={bool(linecache.getline(branchy.__file__, 1))}\n")
