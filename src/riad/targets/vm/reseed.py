"""Fresh randomness for a guest restored from a snapshot (PID 1 side).

A snapshot freezes the kernel's entropy pool and every generator user space
holds: two guests restored from one snapshot would draw the same TCP initial
sequence numbers, ports, DNS ids and TLS randoms. riad's images boot QEMU's
``microvm`` without ACPI, so QEMU's ``vmgenid`` device (an ACPI device) cannot
tell the kernel it was cloned; instead the runner hands each restored guest
fresh seed bytes from the host's CSPRNG, and PID 1 gives them to
:func:`reseed` before the service draws anything:

- the kernel: the bytes are credited to its pool with ``RNDADDENTROPY`` and its
  CRNG reseeded from the pool at once with ``RNDRESEEDCRNG`` (``/dev/urandom``,
  PID 1 is root, as Linux's vmgenid driver reseeds on a clone), so ``os.urandom``/``getrandom`` and the
  socket kernel's own TCP ISNs and ports differ per instance;
- Python's ``random`` (its module-level generator, seeded at import) is seeded
  again from the kernel's reseeded pool and the bytes;
- OpenSSL's DRBG, where ``ssl`` is already imported, gets the bytes with
  ``ssl.RAND_add``;
- hooks registered with :func:`on_restore` (a generator a service or riad made
  before the snapshot) are called with fresh bytes of their own.

riad's own stack draws its TCP sequence secret, port randomisers and IP/DNS
ids when it is built, which a snapshot image does after restore, from the
reseeded kernel.

This module imports little on purpose: PID 1 imports it in every image.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
from collections.abc import Callable

__all__ = ["SEED_BYTES", "on_restore", "reseed"]

SEED_BYTES = 64
"""How many seed bytes the runner sends a restored guest."""

RNDADDENTROPY = 0x40085203
"""``_IOW('R', 0x03, int[2])``: add bytes to the kernel's pool, crediting entropy."""

RNDRESEEDCRNG = 0x5207
"""``_IO('R', 0x07)``: reseed the kernel's CRNG from its pool now. Bytes added to the pool
of a kernel already initialised reach ``getrandom`` only at its next scheduled reseed
(up to a minute later): until then two restored guests would draw the same bytes."""

_hooks: list[Callable[[bytes], None]] = []


def on_restore(hook: Callable[[bytes], None]) -> None:
    """Call ``hook`` with 32 fresh bytes each time a snapshot is restored."""
    _hooks.append(hook)


def _kernel(seed: bytes) -> str | None:
    """Credit ``seed`` to the kernel's pool; ``None`` on success, else why not."""
    info = struct.pack("ii", len(seed) * 8, len(seed)) + seed
    try:
        fd = os.open("/dev/urandom", os.O_WRONLY)
    except OSError as exc:
        return f"/dev/urandom: {exc.strerror}"
    try:
        fcntl.ioctl(fd, RNDADDENTROPY, info)
        fcntl.ioctl(fd, RNDRESEEDCRNG)
    except OSError as exc:
        # unprivileged: the bytes are still mixed in (credited with nothing)
        os.write(fd, seed)
        return f"RNDADDENTROPY: {exc.strerror} (mixed in without credit)"
    finally:
        os.close(fd)
    return None


def reseed(seed: bytes) -> list[str]:
    """Make this instance's randomness its own after a restore; return what could not
    be done (empty when everything was reseeded).

    ``seed``: at least 32 bytes from the host's CSPRNG, different for each restore.
    """
    if len(seed) < 32:
        raise ValueError(f"a restored guest needs at least 32 seed bytes, got {len(seed)}")
    problems: list[str] = []
    failed = _kernel(seed)
    if failed is not None:
        problems.append(failed)
    import random

    random.seed(seed + os.urandom(32))
    ssl = sys.modules.get("ssl")
    if ssl is not None:
        ssl.RAND_add(seed, float(len(seed)))
    for hook in _hooks:
        hook(os.urandom(32))
    return problems
