"""The key store in the index's PostgreSQL (QA_STORE=pgvector): every replica sees every key and
every revocation at once. Tables `qa_api_keys` and `qa_api_key_collections`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from psycopg import Connection

from qa_service.keys.store import KEY_COLUMNS, TOUCH_INTERVAL_SECONDS, ApiKey, KeyStore, build_keys
from qa_service.store.postgres import Postgres

_SCHEMA = """
CREATE TABLE IF NOT EXISTS qa_api_keys (
    id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'chat')), name TEXT,
    created_at DOUBLE PRECISION NOT NULL, last_used_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS qa_api_key_collections (
    key_id TEXT NOT NULL REFERENCES qa_api_keys(id) ON DELETE CASCADE, collection TEXT NOT NULL,
    PRIMARY KEY (key_id, collection)
);
CREATE INDEX IF NOT EXISTS qa_api_key_collections_name ON qa_api_key_collections (collection)
"""


def create_pg_schema(conn: Connection[Any]) -> None:
    for statement in _SCHEMA.split(";"):
        conn.execute(statement)


class PostgresKeyStore(KeyStore):
    """Shares the process's pool (`Postgres.shared`) with the index and the conversation state; it
    does not close it."""

    def __init__(
        self, db: Postgres, clock: Callable[[], float] = time.time, touch_interval: float = TOUCH_INTERVAL_SECONDS
    ) -> None:
        super().__init__(clock, touch_interval)
        self.db = db
        db.setup(create_pg_schema)

    def _keys(self, where: str = "", params: tuple[object, ...] = ()) -> list[ApiKey]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM qa_api_keys {where} ORDER BY created_at, id",
                params,
            ).fetchall()
            scopes = conn.execute(
                "SELECT key_id, collection FROM qa_api_key_collections WHERE key_id = ANY(%s)", ([r[0] for r in rows],)
            ).fetchall()
        return build_keys(rows, scopes)

    def get(self, key_id: str) -> ApiKey | None:
        found = self._keys("WHERE id = %s", (key_id,))
        return found[0] if found else None

    def list(self) -> list[ApiKey]:
        return self._keys()

    def _insert(self, key: ApiKey, secret_hash: str) -> None:
        with self.db.transaction(writer_lock=False) as conn:
            conn.execute(
                "INSERT INTO qa_api_keys(id, secret_hash, role, name, created_at) VALUES (%s, %s, %s, %s, %s)",
                (key.id, secret_hash, key.role, key.name, key.created_at),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO qa_api_key_collections(key_id, collection) VALUES (%s, %s)",
                    [(key.id, c) for c in key.collections],
                )

    def _find(self, secret_hash: str) -> tuple[ApiKey, str] | None:
        with self.db.connection() as conn:
            sql = "SELECT id, secret_hash FROM qa_api_keys WHERE secret_hash = %s"
            row = conn.execute(sql, (secret_hash,)).fetchone()
        if row is None:
            return None
        found = self._keys("WHERE id = %s", (row[0],))
        return (found[0], row[1]) if found else None

    def _touch(self, key_id: str, now: float, unless_after: float) -> bool:
        rows = self.db.rows(
            "UPDATE qa_api_keys SET last_used_at = %s WHERE id = %s AND (last_used_at IS NULL OR last_used_at <= %s) "
            "RETURNING 1",
            (now, key_id, unless_after),
        )
        return bool(rows)

    def _revoke(self, key_id: str, now: float) -> bool:
        rows = self.db.rows(
            "UPDATE qa_api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s RETURNING 1", (now, key_id)
        )
        return bool(rows)

    def _rename(self, old: str, new: str) -> int:
        with self.db.transaction(writer_lock=False) as conn:
            conn.execute(
                "INSERT INTO qa_api_key_collections(key_id, collection) "
                "SELECT key_id, %s FROM qa_api_key_collections WHERE collection = %s ON CONFLICT DO NOTHING",
                (new, old),
            )
            return conn.execute("DELETE FROM qa_api_key_collections WHERE collection = %s", (old,)).rowcount

    def _forget(self, name: str, now: float) -> int:
        with self.db.transaction(writer_lock=False) as conn:
            changed = conn.execute("DELETE FROM qa_api_key_collections WHERE collection = %s", (name,)).rowcount
            conn.execute(
                "UPDATE qa_api_keys k SET revoked_at = %s WHERE revoked_at IS NULL AND role <> 'admin' "
                "AND NOT EXISTS (SELECT 1 FROM qa_api_key_collections c WHERE c.key_id = k.id)",
                (now,),
            )
        return changed

    def close(self) -> None:
        """Nothing to do: the shared pool is closed by its owner (the conversation state)."""
