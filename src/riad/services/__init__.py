"""Services built on riad's devices: HTTP (h11 + ASGI) and TLS (``ssl.MemoryBIO``)."""
