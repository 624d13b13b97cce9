"""The key store in the embedded state database (SQLite beside the index): tables `api_keys` and
`api_key_collections`, with their own thread-local connections."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qa_service.keys.store import KEY_COLUMNS, TOUCH_INTERVAL_SECONDS, ApiKey, KeyStore, build_keys
from qa_service.sqlite_state import StateConnections

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'chat')), name TEXT,
    created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL
);
CREATE TABLE IF NOT EXISTS api_key_collections (
    key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE, collection TEXT NOT NULL,
    PRIMARY KEY (key_id, collection)
);
CREATE INDEX IF NOT EXISTS api_key_collections_name ON api_key_collections(collection);
"""


class SQLiteKeyStore(KeyStore):
    """In the state database (its own tables, its own thread-local connections)."""

    def __init__(
        self, path: Path, clock: Callable[[], float] = time.time, touch_interval: float = TOUCH_INTERVAL_SECONDS
    ) -> None:
        super().__init__(clock, touch_interval)
        self.path = path
        self._conn = StateConnections(path, foreign_keys=True)
        with self._conn() as conn:
            conn.executescript(_SQLITE_SCHEMA)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _keys(self, conn: sqlite3.Connection, where: str = "", params: tuple[object, ...] = ()) -> list[ApiKey]:
        rows = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, id", params).fetchall()
        ids = [r[0] for r in rows]
        scopes = conn.execute(
            f"SELECT key_id, collection FROM api_key_collections WHERE key_id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        return build_keys(rows, scopes)

    def get(self, key_id: str) -> ApiKey | None:
        with self._conn() as conn:
            found = self._keys(conn, "WHERE id = ?", (key_id,))
        return found[0] if found else None

    def list(self) -> list[ApiKey]:
        with self._conn() as conn:
            return self._keys(conn)

    def _insert(self, key: ApiKey, secret_hash: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO api_keys(id, secret_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?)",
                (key.id, secret_hash, key.role, key.name, key.created_at),
            )
            conn.executemany(
                "INSERT INTO api_key_collections(key_id, collection) VALUES (?, ?)",
                [(key.id, c) for c in key.collections],
            )

    def _find(self, secret_hash: str) -> tuple[ApiKey, str] | None:
        with self._conn() as conn:
            row = conn.execute("SELECT id, secret_hash FROM api_keys WHERE secret_hash = ?", (secret_hash,)).fetchone()
            if row is None:
                return None
            found = self._keys(conn, "WHERE id = ?", (row[0],))
        return (found[0], row[1]) if found else None

    def _touch(self, key_id: str, now: float, unless_after: float) -> bool:
        with self._conn() as conn:
            return (
                conn.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
                    (now, key_id, unless_after),
                ).rowcount
                > 0
            )

    def _revoke(self, key_id: str, now: float) -> bool:
        with self._conn() as conn:
            sql = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?"
            return conn.execute(sql, (now, key_id)).rowcount > 0

    def _rename(self, old: str, new: str) -> int:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO api_key_collections(key_id, collection) "
                "SELECT key_id, ? FROM api_key_collections WHERE collection = ?",
                (new, old),
            )
            changed = conn.execute("DELETE FROM api_key_collections WHERE collection = ?", (old,)).rowcount
        return int(changed)

    def _forget(self, name: str, now: float) -> int:
        with self._write() as conn:
            changed = conn.execute("DELETE FROM api_key_collections WHERE collection = ?", (name,)).rowcount
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE revoked_at IS NULL AND role != 'admin' "
                "AND id NOT IN (SELECT key_id FROM api_key_collections)",
                (now,),
            )
        return int(changed)

    def close(self) -> None:
        self._conn.close()
