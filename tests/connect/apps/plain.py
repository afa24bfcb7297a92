"""A service on the network that makes no TLS client connection."""

import riad

app = riad.App("plain", network=True, description="no TLS client")


@app.main
async def main(dev: riad.Devices) -> None:
    dev.log.info("up")
    await dev.wait_for_shutdown()
