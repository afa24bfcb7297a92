"""Sealing a service into an image: start-up tracing, the cpio writer, the
kernel provisioning and the vm image builder.

This layer sits below ``targets/``: it knows how to collect what a service
needs and how to lay it out, not how to run it. Every failure a user can fix
is raised as :class:`ImageError` carrying a one-line message naming the fix.
"""

from __future__ import annotations


class ImageError(Exception):
    """A build cannot go on; the message names what to do about it."""
