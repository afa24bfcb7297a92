"""Sans-IO protocol cores: ARP, IPv4 reassembly, ICMPv4, UDP (TCP in ``tcp/``).

Every core has one shape: feed it input with ``now``, ask it for output
(``poll_transmit(now)``), ask when it next needs attention (``poll_at()``),
tell it a deadline passed (``on_timeout(now)``). No core does I/O, reads a
clock or draws randomness; drops are counted in a ``Counter`` it is handed.
"""
