"""Network device backends and the middleware that wraps them.

- ``netdev``: the ``NetDevice`` protocol and its offload vocabulary.
- ``sim``: an in-memory switch on simulated time, with seeded impairments.
- ``tap``: a Linux TAP device (by name or inherited fd), optionally with a
  virtio-net header for checksum offload and TSO/GSO.
- ``packet``: an AF_PACKET socket bound to an existing interface.
- ``pcap``, ``trace``, ``fault``: middleware devices wrapping any device.
- ``kv``: key-value stores (directory, memory, embedded).
- ``socket_stack``: a ``Stack`` on the host kernel's sockets (``--net socket``).
- ``console``, ``entropy``: the console and entropy devices.
"""
