"""API keys with scopes: who may ask, and who may manage, which collection.

- `principal`: `Principal` (the authenticated caller) and its rules; collection-name validation.
- `store`: `KeyStore` and `ApiKey`; `sqlite`: the store in the state database (embedded default).
- `postgres`: the PostgreSQL store (QA_STORE=pgvector).

The HTTP side (bearer token -> Principal, rate limits) is `qa_service.api.deps`; the routes that
create, list and revoke keys are `qa_service.api.routes.keys`.
"""

from __future__ import annotations

from qa_service.keys.principal import OUT_OF_SCOPE, Principal, Role, validate_collection_name
from qa_service.keys.sqlite import SQLiteKeyStore
from qa_service.keys.store import ApiKey, KeyStore
from qa_service.settings import Settings

__all__ = [
    "OUT_OF_SCOPE",
    "ApiKey",
    "KeyStore",
    "Principal",
    "Role",
    "SQLiteKeyStore",
    "open_key_store",
    "validate_collection_name",
]


def open_key_store(settings: Settings) -> KeyStore:
    """The key store the settings describe: the index's PostgreSQL (QA_STORE=pgvector), else the
    state database (QA_STATE_DB, default INDEX_DIR/state.sqlite)."""
    if settings.store == "pgvector" and settings.database_url is not None:
        from qa_service.keys.postgres import PostgresKeyStore
        from qa_service.store.postgres import Postgres

        db = Postgres.of_settings(settings)
        return PostgresKeyStore(db)
    return SQLiteKeyStore(settings.state_db or settings.index_dir / "state.sqlite")
