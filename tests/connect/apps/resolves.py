"""A service that looks a name up at start-up (``--hosts db=ADDRESS``), before it serves."""

import riad

app = riad.App("resolves", network=True, description="a name resolved in main")


@app.main
async def main(dev: riad.Devices) -> None:
    addresses = await dev.resolver.resolve("db")
    dev.log.info("resolved", name="db", address=",".join(addresses))
    await dev.wait_for_shutdown()
