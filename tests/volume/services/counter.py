"""A service with a volume: counts its starts in SQLite and in a store on the volume,
writes and reads an ordinary file there, and says what it found."""

import asyncio
import sqlite3

import riad

app = riad.App("counter", description="counts its starts on a volume")
data = app.volume("data", size="32M", help="the counts")
state = app.kv("state", volume=data)
journal = app.arg("--journal", str, default="wal", choices=["wal", "delete"])


@app.main
async def main(dev: riad.Devices) -> None:
    await asyncio.sleep(0.5)  # start-up is over (traces stop, a vm seals); then the files
    db = sqlite3.connect(data.path / "starts.sqlite3", isolation_level=None)
    mode = db.execute(f"PRAGMA journal_mode={journal.value}").fetchone()[0]
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS starts (n INTEGER PRIMARY KEY, note TEXT)")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO starts (note) VALUES (?)", ("x" * 2000,))
    db.execute("COMMIT")
    starts = db.execute("SELECT count(*) FROM starts").fetchone()[0]
    check = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    store = dev.writable_kv("state")
    before = int(await store.get("starts")) if await store.list("starts") else 0
    if not await store.compare_and_set(
        "starts", str(before).encode() if before else None, str(before + 1).encode()
    ):
        raise RuntimeError("compare_and_set failed with no other writer")
    notes = data.path / "notes"
    notes.mkdir(exist_ok=True)
    (notes / "last.txt").write_text(f"start {starts}\n")
    listed = sorted(p.name for p in data.path.iterdir())
    dev.log.info(
        "counted",
        starts=starts,
        kv=int(await store.get("starts")),
        mode=mode,
        check=check,
        note=(notes / "last.txt").read_text().strip(),
        files=",".join(listed),
        path=str(data.path),
    )
