"""riad: a library operating system for Python network services.

A service is written once against small device interfaces (network stack,
key-value store, clock, entropy, console) and sealed for a target: ``unix``
(a host process), ``sandbox`` (a process locked down to a few system calls)
or ``vm`` (a microVM image booted under QEMU).
"""

__version__ = "0.1.0"
