"""The ``sandbox`` target: a service sealed into a handful of system calls.

- :mod:`.bpf`, :mod:`.policy`: a seccomp-BPF compiler of riad's own;
- :mod:`.profile`: the allowlist a sealed riad service needs;
- :mod:`.seal`, :mod:`.linux`: namespaces, empty root, capabilities, limits,
  Landlock and the filter, applied to the calling process;
- :mod:`.child`, :mod:`.supervisor`, :mod:`.notify`: the sealed child and
  the supervisor that reports what the seal stops;
- :mod:`.app_entry`: a riad service (``riad.App``) as the sealed child runs it;
- :mod:`.imports`, :mod:`.warmup`: everything imported and first used before
  the seal (the start-up trace, cached);
- :mod:`.inplace`: the same seal applied in place (the vm target's PID 1);
- :mod:`.target`: the target itself (``riad run -t sandbox``) and ``riad
  inspect -t sandbox``.

See ``docs/security.md``.
"""
