"""template-name: logs a greeting every second, then stops.

Run it:   riad run template-name
          riad run template-name --count 3 --interval 0.5 --logs debug
Stop it:  Ctrl-C (riad cancels main and exits 0)

The service declares what it needs (here: no network, three arguments) and
riad composes it for the target. See docs/writing-a-service.md.
"""

import asyncio

import riad

app = riad.App("template-name", description="logs a greeting every second")
count = app.arg("--count", int, default=5, help="how many greetings; 0: until stopped")
interval = app.arg("--interval", float, default=1.0, help="seconds between greetings")
greeting = app.arg("--greeting", str, default="hello", help="what to say")


@app.main
async def main(dev: riad.Devices) -> None:
    sent = 0
    while count.value == 0 or sent < count.value:
        sent += 1
        dev.log.info(greeting.value, n=sent)
        if count.value == 0 or sent < count.value:
            await asyncio.sleep(interval.value)
