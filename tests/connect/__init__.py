"""Connected services: asyncio on riad's stack, TLS clients, real servers by name."""
