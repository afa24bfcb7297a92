"""SQLite on a volume, measured from inside the service (bench/volume.py runs it).

For each journal mode it commits ``--txns`` transactions of one 100-byte row
each (``synchronous=FULL``: one or more ``fsync`` per commit) and then answers
``--reads`` point queries by primary key, and logs
``bench journal=MODE txn_per_s=X read_per_s=Y``. ``measure`` is the same code
the bench runs on the host, against host SQLite on the same disk.
"""

import asyncio
import sqlite3
import time
from pathlib import Path

import riad

app = riad.App("sqlitebench", description="SQLite transactions and reads on a volume")
data = app.volume("data", size="256M")
txns = app.arg("--txns", int, default=500)
reads = app.arg("--reads", int, default=20000)


def measure(folder: Path, journal: str, txn_count: int, read_count: int) -> tuple[float, float]:
    """Transactions per second and reads per second of SQLite in ``folder``."""
    path = folder / f"bench-{journal}.sqlite3"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    row = bytes(100)
    start = time.perf_counter()
    for k in range(txn_count):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, row))
        db.execute("COMMIT")
    txn_s = time.perf_counter() - start
    query = "SELECT v FROM t WHERE k = ?"
    start = time.perf_counter()
    for i in range(read_count):
        db.execute(query, ((i * 7919) % txn_count,)).fetchone()
    read_s = time.perf_counter() - start
    db.close()
    return txn_count / txn_s, read_count / read_s


@app.main
async def main(dev: riad.Devices) -> None:
    await asyncio.sleep(0.5)  # start-up is over: a vm seals here, then measures sealed
    for journal in ("wal", "delete"):
        txn_rate, read_rate = measure(data.path, journal, txns.value, reads.value)
        dev.log.info(f"bench journal={journal} txn_per_s={txn_rate:.1f} read_per_s={read_rate:.1f}")
