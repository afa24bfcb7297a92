"""hello: the smallest riad service. Logs a line every second, stops after --count.

    riad run examples/hello                     # 5 lines, one a second, exit 0
    riad run examples/hello --count 0           # until Ctrl-C
    riad run examples/hello --count 3 --interval 0.2 --name riad

It needs no network and no store: it declares none, and riad gives it only
a clock, entropy and the console (through ``dev.log``).
"""

import asyncio

import riad

app = riad.App("hello", description="logs a line every second, then stops")
count = app.arg("--count", int, default=5, help="how many lines; 0: until stopped")
interval = app.arg("--interval", float, default=1.0, help="seconds between lines")
name = app.arg("--name", str, default="world", help="who to greet")


@app.main
async def main(dev: riad.Devices) -> None:
    if count.value < 0 or interval.value < 0:
        raise riad.ConfigError("--count and --interval cannot be negative")
    started = dev.clock.now()
    n = 0
    while count.value == 0 or n < count.value:
        n += 1
        dev.log.info(f"hello, {name.value}", n=n, uptime=str(dev.clock.now() - started))
        if n != count.value:
            await asyncio.sleep(interval.value)
