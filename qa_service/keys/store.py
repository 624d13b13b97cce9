"""API keys created through the API: stored hashed, listed with their scope and last use, revocable.

A key is `id` (`key_` + 12 hex digits, public: lists, logs, rate-limit buckets) plus a secret
(`qas_` + 43 URL-safe characters, 256 random bits) shown once, at creation. Only the SHA-256 of the
secret is stored: a random 256-bit secret needs no slow password hash, and looking it up by its hash
through a unique index compares nothing secret-dependent in Python (the one comparison there is
constant-time anyway). Revoked keys stay listed; they authenticate like unknown keys (not at all).

Embedded default: tables `api_keys` and `api_key_collections` in the state database (SQLite beside
the index). QA_STORE=pgvector: `qa_api_keys` and `qa_api_key_collections` in the index's PostgreSQL
(`qa_service.keys.postgres`), so every replica knows every key and a revoke holds everywhere at once.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from qa_service.errors import InvalidInputError
from qa_service.keys.principal import Role, validate_collection_name, validate_scope
from qa_service.sqlite_state import StateConnections

SECRET_PREFIX = "qas_"
ID_PREFIX = "key_"
ID_PATTERN = r"^key_[0-9a-f]{12}$"
MAX_NAME_CHARS = 100
TOUCH_INTERVAL_SECONDS = 60.0  # last_used_at is written at most this often per key: a request is not a write


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return ID_PREFIX + secrets.token_hex(6)


def hash_secret(secret: str) -> str:
    """What is stored of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_managed_key(token: str) -> bool:
    """Whether `token` has the shape of a key this store issues (bootstrap keys from settings may not)."""
    return token.startswith(SECRET_PREFIX)


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret. Times are Unix seconds."""

    id: str
    role: Role
    collections: tuple[str, ...]  # sorted; empty for admin keys (they have every collection)
    name: str | None
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _clean_name(name: str | None) -> str | None:
    if name is None or not name.strip():
        return None
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInputError(f"Key name too long ({len(name)} characters): at most {MAX_NAME_CHARS}.")
    return name


class KeyStore(ABC):
    """Storage of API keys. `clock` gives Unix seconds (injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.time, touch_interval: float = TOUCH_INTERVAL_SECONDS) -> None:
        self.clock, self.touch_interval = clock, touch_interval
        self._touched: dict[str, float] = {}  # key id -> when this process last recorded its use
        self._touch_lock = threading.Lock()

    def create(self, role: Role, collections: Iterable[str] = (), name: str | None = None) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret exists outside the client). Raises
        InvalidInputError (422) for a bad role, scope or name (see `validate_scope`)."""
        scope = tuple(sorted(validate_scope(role, collections)))
        key = ApiKey(new_key_id(), role, scope, _clean_name(name), self.clock())
        secret = new_secret()
        self._insert(key, hash_secret(secret))
        return key, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is; None when unknown or revoked. Records the use (throttled:
        at most once per `touch_interval` per key, in this process and in the database)."""
        digest = hash_secret(secret)
        found = self._find(digest)
        if found is None:
            return None
        key, stored = found
        if not hmac.compare_digest(stored, digest) or key.revoked:
            return None
        now = self.clock()
        with self._touch_lock:
            due = now - self._touched.get(key.id, -math.inf) >= self.touch_interval
            if due:
                self._touched[key.id] = now
        if due and self._touch(key.id, now, now - self.touch_interval):
            key = replace(key, last_used_at=now)
        return key

    def revoke(self, key_id: str) -> bool:
        """Revoke the key (at once, for every replica); False if there is no such key. Revoking a
        revoked key keeps its first revocation time."""
        return self._revoke(key_id, self.clock())

    def rename_collection(self, old: str, new: str) -> int:
        """Keys naming collection `old` name `new` instead (call it when the collection is renamed);
        returns how many keys changed."""
        if validate_collection_name(old) == validate_collection_name(new):
            return 0
        return self._rename(old, new)

    def forget_collection(self, name: str) -> int:
        """Drop `name` from every key's scope (call it when the collection is deleted), in one
        transaction; a manager or chat key left without a collection is revoked. Returns how many
        keys changed."""
        return self._forget(validate_collection_name(name), self.clock())

    @abstractmethod
    def get(self, key_id: str) -> ApiKey | None: ...

    @abstractmethod
    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    @abstractmethod
    def _insert(self, key: ApiKey, secret_hash: str) -> None: ...

    @abstractmethod
    def _find(self, secret_hash: str) -> tuple[ApiKey, str] | None:
        """The key stored with this hash, and the stored hash."""

    @abstractmethod
    def _touch(self, key_id: str, now: float, unless_after: float) -> bool:
        """Set last_used_at = now unless it is already after `unless_after`; whether it was set."""

    @abstractmethod
    def _revoke(self, key_id: str, now: float) -> bool: ...

    @abstractmethod
    def _rename(self, old: str, new: str) -> int: ...

    @abstractmethod
    def _forget(self, name: str, now: float) -> int: ...

    @abstractmethod
    def close(self) -> None: ...


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
KEY_COLUMNS = "id, role, name, created_at, last_used_at, revoked_at"
Row = tuple[str, str, str | None, float, float | None, float | None]


def build_keys(rows: Iterable[Row], scopes: Iterable[tuple[str, str]]) -> list[ApiKey]:
    """ApiKeys from rows of KEY_COLUMNS and (key_id, collection) pairs."""
    by_key: dict[str, list[str]] = {}
    for key_id, collection in scopes:
        by_key.setdefault(key_id, []).append(collection)
    return [
        ApiKey(r[0], r[1], tuple(sorted(by_key.get(r[0], []))), r[2], r[3], r[4], r[5])  # type: ignore[arg-type]
        for r in rows
    ]


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
