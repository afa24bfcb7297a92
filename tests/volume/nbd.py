"""A disk that loses what it was not told to flush: an NBD server for power-cut tests.

QEMU attaches it as a vm's disk (``-drive file=nbd:unix:SOCKET``). Like a disk
with a volatile write cache, it keeps every write in memory until a flush makes
the writes before it durable (they are then applied to the backing file); a
write with FUA is durable itself at once. ``power_cut(rng, keep)`` is the power
failing: of the writes not flushed yet, each reaches the file or not, by a
seeded draw (applied in the order they were written, so a later write to the
same blocks wins where both got there); the others are lost. Reads see every
write, flushed or not, as a disk's cache would serve them.

``arm(n)``: the power fails as the ``n``-th write from now arrives: the disk
stops answering (the write is in its cache, unanswered) and sets ``cut``;
the test kills QEMU and calls ``power_cut``. ``ignore_flushes``: a disk that
lies, answering flushes without making anything durable (the negative control).

The protocol is the NBD protocol's fixed newstyle negotiation (``NBD_OPT_GO``
and ``NBD_OPT_EXPORT_NAME``) and simple replies to ``READ``, ``WRITE``,
``FLUSH`` and ``DISC``; everything else is refused. One client at a time.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from pathlib import Path

NBD_MAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_INFO, OPT_GO = 1, 2, 6, 7
REP_ACK, REP_INFO, REP_ERR_UNSUP = 1, 3, (1 << 31) + 1
INFO_EXPORT = 0
HAS_FLAGS, SEND_FLUSH, SEND_FUA = 1, 1 << 2, 1 << 3
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
CMD_FLAG_FUA = 1
EINVAL = 22


class CachedDisk:
    """The backing file and the writes not flushed yet."""

    def __init__(self, path: Path, *, ignore_flushes: bool = False) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.pending: list[tuple[int, bytes, bool]] = []
        self.flushes = 0
        self.ignore_flushes = ignore_flushes
        self.lock = threading.Lock()
        self.cut = threading.Event()
        self._restored = threading.Event()
        self._writes_left: int | None = None

    def arm(self, writes: int) -> None:
        """Cut the power as the ``writes``-th write from now arrives."""
        self.cut.clear()
        self._restored.clear()
        self._writes_left = writes

    def read(self, offset: int, length: int) -> bytes:
        with self.lock, self.path.open("rb") as handle:
            handle.seek(offset)
            data = bytearray(handle.read(length))
            for start, chunk, _ in self.pending:  # the cache, in the order written
                low, high = max(start, offset), min(start + len(chunk), offset + length)
                if low < high:
                    data[low - offset : high - offset] = chunk[low - start : high - start]
            return bytes(data)

    def write(self, offset: int, data: bytes, fua: bool = False) -> None:
        with self.lock:
            self.pending.append((offset, data, fua and not self.ignore_flushes))
            if fua and not self.ignore_flushes:
                self._apply([(offset, data)])
            if self._writes_left is not None:
                self._writes_left -= 1
                failing = self._writes_left <= 0
            else:
                failing = False
        if failing:  # the power is gone: this write is never answered
            self._writes_left = None
            self.cut.set()
            self._restored.wait()
            raise ConnectionError("the power was cut")

    def flush(self) -> None:
        if self.ignore_flushes:
            return
        with self.lock:
            self._apply([(offset, data) for offset, data, _ in self.pending])
            self.pending = []
            self.flushes += 1

    def power_cut(self, rng: random.Random, keep: float = 0.5) -> int:
        """Lose the writes not flushed, but each with probability ``keep``; how many were lost."""
        with self.lock:
            kept = [(o, d) for o, d, fua in self.pending if fua or rng.random() < keep]
            self._apply(kept)
            lost = len(self.pending) - len(kept)
            self.pending = []
        self._restored.set()
        return lost

    def _apply(self, writes: list[tuple[int, bytes]]) -> None:
        if not writes:
            return
        with self.path.open("r+b") as handle:
            for offset, data in writes:
                handle.seek(offset)
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    return data


class NbdServer:
    """Serves ``disk`` on a unix socket at ``path`` in a thread, one client at a time."""

    def __init__(self, disk: CachedDisk, path: Path) -> None:
        self.disk = disk
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    if self._negotiate(conn):
                        self._transmit(conn)
                except (ConnectionError, OSError):
                    pass

    def _negotiate(self, conn: socket.socket) -> bool:
        conn.sendall(NBD_MAGIC + struct.pack(">QH", IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (client_flags,) = struct.unpack(">I", _exactly(conn, 4))
        flags = HAS_FLAGS | SEND_FLUSH | SEND_FUA
        while True:
            magic, option, length = struct.unpack(">QII", _exactly(conn, 16))
            if magic != IHAVEOPT:
                return False
            _exactly(conn, length)
            if option == OPT_EXPORT_NAME:
                tail = b"" if client_flags & FLAG_NO_ZEROES else bytes(124)
                conn.sendall(struct.pack(">QH", self.disk.size, flags) + tail)
                return True
            if option in (OPT_GO, OPT_INFO):
                info = struct.pack(">HQH", INFO_EXPORT, self.disk.size, flags)
                conn.sendall(struct.pack(">QIII", REPLY_MAGIC, option, REP_INFO, len(info)) + info)
                conn.sendall(struct.pack(">QIII", REPLY_MAGIC, option, REP_ACK, 0))
                if option == OPT_GO:
                    return True
            elif option == OPT_ABORT:
                conn.sendall(struct.pack(">QIII", REPLY_MAGIC, option, REP_ACK, 0))
                return False
            else:
                conn.sendall(struct.pack(">QIII", REPLY_MAGIC, option, REP_ERR_UNSUP, 0))

    def _transmit(self, conn: socket.socket) -> None:
        while True:
            magic, flags, kind, handle, offset, length = struct.unpack(
                ">IHHQQI", _exactly(conn, 28)
            )
            if magic != REQUEST_MAGIC:
                return
            error, data = 0, b""
            if kind == CMD_READ:
                data = self.disk.read(offset, length)
            elif kind == CMD_WRITE:
                self.disk.write(offset, _exactly(conn, length), bool(flags & CMD_FLAG_FUA))
            elif kind == CMD_FLUSH:
                self.disk.flush()
            elif kind == CMD_DISC:
                return
            else:
                error = EINVAL
            conn.sendall(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, handle) + data)
