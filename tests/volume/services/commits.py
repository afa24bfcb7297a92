"""Numbered transactions on a volume, for the crash harness (tests/volume/crash.py).

At start it checks what the last run left: SQLite's integrity check, and that
the transactions are whole — each one writes three tables (its row with a
payload and the payload's digest, a running total, the head counter); any
half-applied one breaks an equality below — then prints
``recovered head=N ok`` (or ``recovered ... BROKEN: why``). Then it commits
transactions N+1, N+2... (synchronous=FULL with WAL, EXTRA with the rollback
journal) and logs ``committed K`` after
each COMMIT has returned, until it is killed.
"""

import asyncio
import hashlib
import sqlite3

import riad

app = riad.App("commits", description="numbered transactions until killed")
data = app.volume("data", size="64M")
journal = app.arg("--journal", str, default="wal", choices=["wal", "delete"])
limit = app.arg("--limit", int, default=0, help="stop after this many (0: never)")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS txn (n INTEGER PRIMARY KEY, payload BLOB NOT NULL, "
    "digest TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS total (n INTEGER PRIMARY KEY, bytes INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO head (id, n) VALUES (1, 0)",
)


def payload_of(n: int) -> bytes:
    """Transaction n's payload: 100 to 9000 bytes (often spans pages), its own bytes."""
    size = 100 + (n * 7919) % 8900
    return hashlib.shake_256(str(n).encode()).digest(size)


def check(db: sqlite3.Connection) -> tuple[int, str]:
    """The head, and "ok" or what is wrong."""
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    if integrity != "ok":
        return -1, f"integrity_check: {integrity}"
    head = db.execute("SELECT n FROM head").fetchone()[0]
    count, low, high = db.execute("SELECT count(*), min(n), max(n) FROM txn").fetchone()
    if count != head or (head and (low, high) != (1, head)):
        return head, f"txn rows {count} ({low}..{high}) for head {head}"
    totals = db.execute("SELECT count(*), max(n) FROM total").fetchone()
    if totals != (head, high):
        return head, f"total rows {totals} for head {head}"
    running = 0
    for n, body, digest, recorded in db.execute(
        "SELECT txn.n, payload, digest, bytes FROM txn JOIN total USING (n) ORDER BY n"
    ):
        running += len(body)
        if body != payload_of(n) or hashlib.sha256(body).hexdigest() != digest:
            return head, f"transaction {n}: payload or digest damaged"
        if recorded != running:
            return head, f"transaction {n}: running total {recorded}, expected {running}"
    return head, "ok"


@app.main
async def main(dev: riad.Devices) -> None:
    await asyncio.sleep(0.5)  # start-up is over (traces stop, a vm seals); then the files
    db = sqlite3.connect(data.path / "commits.sqlite3", isolation_level=None)
    db.execute(f"PRAGMA journal_mode={journal.value}")
    # WAL: FULL syncs the log at each commit. Rollback journal: a commit is the
    # journal's removal, and only EXTRA syncs the folder after it; with FULL a
    # machine crash (a killed vm) can bring the journal back and roll the last
    # acknowledged transaction back (this harness saw it: docs/vm.md).
    db.execute(f"PRAGMA synchronous={'FULL' if journal.value == 'wal' else 'EXTRA'}")
    for statement in SCHEMA:
        db.execute(statement)
    head, verdict = check(db)
    if verdict == "ok":
        dev.log.info(f"recovered head={head} ok")
    else:
        dev.log.error(f"recovered head={head} BROKEN: {verdict}")
        return
    n = head
    total = db.execute("SELECT coalesce(max(bytes), 0) FROM total").fetchone()[0]
    while limit.value == 0 or n < head + limit.value:
        n += 1
        body = payload_of(n)
        total += len(body)
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO txn (n, payload, digest) VALUES (?, ?, ?)",
            (n, body, hashlib.sha256(body).hexdigest()),
        )
        db.execute("INSERT INTO total (n, bytes) VALUES (?, ?)", (n, total))
        db.execute("UPDATE head SET n = ?", (n,))
        db.execute("COMMIT")
        dev.log.info(f"committed {n}")
    db.close()
