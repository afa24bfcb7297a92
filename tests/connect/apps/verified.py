"""A service that makes its TLS client context at start-up, trusting certifi's bundle."""

import riad

app = riad.App("verified", network=True, description="a TLS client with the default bundle")


@app.main
async def main(dev: riad.Devices) -> None:
    trusted = len(dev.tls_client.get_ca_certs())
    dev.log.info("trusting", cas=trusted)
    await dev.wait_for_shutdown()
