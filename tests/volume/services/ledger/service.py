"""A service that keeps its state on a volume through two libraries users reach for:
aiosqlite (SQLite in a thread of its own) and Django's ORM on a SQLite file.

Each start adds one row with each, then says how many rows each holds; both
run their SQLite calls in threads, which the service declares
(``App(threads=...)``) and the seals then allow.
"""

import aiosqlite
import django
from django.conf import settings

import riad

app = riad.App("ledger", description="keeps its starts with aiosqlite and Django's ORM", threads=4)
data = app.volume("data", size="32M", help="the two databases")


def setup_django() -> None:
    settings.configure(
        INSTALLED_APPS=["ledger_app"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(data.path / "django.sqlite3"),
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
    )
    django.setup()


async def count_with_aiosqlite() -> int:
    async with aiosqlite.connect(data.path / "aio.sqlite3") as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("CREATE TABLE IF NOT EXISTS starts (n INTEGER PRIMARY KEY)")
        await db.execute("INSERT INTO starts DEFAULT VALUES")
        await db.commit()
        async with db.execute("SELECT count(*) FROM starts") as rows:
            row = await rows.fetchone()
    assert row is not None
    return int(row[0])


async def count_with_django() -> int:
    from asgiref.sync import sync_to_async
    from django.core.management import call_command
    from ledger_app.models import Start

    await sync_to_async(call_command)("migrate", run_syncdb=True, verbosity=0)
    await Start.objects.acreate(note="started")
    return await Start.objects.acount()


@app.main
async def main(dev: riad.Devices) -> None:
    setup_django()
    aio = await count_with_aiosqlite()
    orm = await count_with_django()
    dev.log.info("ledger", aiosqlite=aio, django=orm)
