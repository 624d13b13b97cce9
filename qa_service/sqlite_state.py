"""Thread-local SQLite connections to the embedded state database (conversations, question log)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StateConnections:
    """One connection per thread (sqlite3 connections are not shared across threads), in autocommit
    mode under WAL. WAL + synchronous=NORMAL: a commit survives a crash of the process; only a power
    cut can lose the last writes. FULL would fsync every answer (milliseconds per chat request)."""

    def __init__(self, path: Path, foreign_keys: bool = False) -> None:
        self.path, self.foreign_keys = path, foreign_keys
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()

    @contextmanager
    def __call__(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if self.foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        yield conn

    def close(self) -> None:
        """Closes this thread's connection (the others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
