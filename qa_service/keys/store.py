"""API keys created through the API: stored hashed, listed with their scope and last use, revocable.

A key is `id` (`key_` + 12 hex digits, public: lists, logs, rate-limit buckets) plus a secret
(`qas_` + 43 URL-safe characters, 256 random bits) shown once, at creation. Only the SHA-256 of the
secret is stored: a random 256-bit secret needs no slow password hash, and looking it up by its hash
through a unique index compares nothing secret-dependent in Python (the one comparison there is
constant-time anyway). Revoked keys stay listed; they authenticate like unknown keys (not at all).

Embedded default: tables `api_keys` and `api_key_collections` in the state database (SQLite beside
the index; `qa_service.keys.sqlite`). QA_STORE=pgvector: `qa_api_keys` and `qa_api_key_collections` in
the index's PostgreSQL (`qa_service.keys.postgres`), so every replica knows every key and a revoke
holds everywhere at once.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from qa_service.errors import InvalidInputError
from qa_service.keys.principal import Role, validate_collection_name, validate_scope

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
