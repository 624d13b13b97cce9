"""Collections of the PostgreSQL backend: the catalog table `qa_collections`, one schema per collection.

Collection `default` is the tables in the `public` schema (a database indexed before collections is
used in place); every other collection has the same tables in its own schema `qa_c_<id>`. All
collection stores share the process's one connection pool. Every replica reads the catalog table on
each lookup, so a collection another replica created, renamed or deleted is seen at once; deleting is
one transaction (the catalog row and `DROP SCHEMA ... CASCADE`), so it is whole or gone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from haystack.utils import Secret
from psycopg import Connection, sql

from qa_service.errors import CollectionExistsError, CollectionNotFoundError
from qa_service.store.collections import DEFAULT, check_not_default, schema_name, validate_name
from qa_service.store.failpoints import failpoint
from qa_service.store.postgres.pool import DEFAULT_TIMEOUT, Postgres
from qa_service.store.postgres.schema import COLLECTIONS_VERSION, UPGRADABLE_VERSIONS, read_meta
from qa_service.store.postgres.store import PgvectorSentenceStore
from qa_service.store.records import Collection

logger = logging.getLogger(__name__)

_CATALOG = """
CREATE SEQUENCE IF NOT EXISTS public.qa_collection_ids;
CREATE TABLE IF NOT EXISTS public.qa_collections (
    id TEXT PRIMARY KEY DEFAULT nextval('public.qa_collection_ids')::text,
    name TEXT NOT NULL UNIQUE,
    public BOOLEAN NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
)
"""
_COLUMNS = "id, name, public, created_at"


class PostgresCatalog:
    """The collections of one database and their (lazily opened, cached) stores."""

    def __init__(
        self,
        connection_string: Secret,
        model: str,
        dimension: int,
        pool_size: int = 8,
        ef_search: int = 100,
        language: str = "english",
        create: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        keyword_ranking: str = "bm25",
        bulk_min_chars: int = 1_000_000,
        maintenance_work_mem: str = "1GB",
    ) -> None:
        self._store_args: dict[str, Any] = {
            "keyword_ranking": keyword_ranking,
            "bulk_min_chars": bulk_min_chars,
            "maintenance_work_mem": maintenance_work_mem,
            "connection_string": connection_string,
            "model": model,
            "dimension": dimension,
            "pool_size": pool_size,
            "ef_search": ef_search,
            "language": language,
            "timeout": timeout,
        }
        self.db = Postgres.shared(connection_string.resolve_value() or "", pool_size, ef_search, timeout)
        self.db.setup(self._upgrade)
        self._lock = threading.Lock()
        self._stores: dict[str, PgvectorSentenceStore] = {
            DEFAULT: PgvectorSentenceStore(create=create, **self._store_args)
        }

    def _upgrade(self, conn: Connection[Any]) -> None:
        """Under the setup lock: create the catalog (with `default`), move a pg-1 database to this
        version, and drop schemas of collections the catalog no longer lists (a replica that opened a
        collection's store while another deleted it)."""
        with conn.transaction():
            for statement in filter(None, (s.strip() for s in _CATALOG.split(";"))):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO public.qa_collections(id, name, public, created_at) VALUES (%s, %s, TRUE, %s) "
                "ON CONFLICT (id) DO NOTHING",
                (DEFAULT, DEFAULT, time.time()),
            )
            meta = read_meta(conn, "public")
            if meta.get("schema_version") in UPGRADABLE_VERSIONS:
                logger.info("Upgrading the database from schema %s to %s", meta["schema_version"], COLLECTIONS_VERSION)
                conn.execute(  # pg-2 -> pg-3 follows when the store opens (schema.create_schema)
                    "UPDATE public.qa_meta SET value = %s WHERE key = 'schema_version'", (COLLECTIONS_VERSION,)
                )
            known = {schema_name(r[0]) for r in conn.execute("SELECT id FROM public.qa_collections")}
            schemas = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname ~ '^qa_c_[0-9]+$'").fetchall()
            for (name,) in schemas:
                if name not in known:
                    logger.info("Dropping schema %s (its collection was deleted)", name)
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

    # --- catalog -----------------------------------------------------------------------------------
    @staticmethod
    def _collection(row: dict[str, Any]) -> Collection:
        return Collection(row["id"], row["name"], bool(row["public"]), float(row["created_at"]))

    def list(self) -> list[Collection]:
        rows = self.db.rows(f"SELECT {_COLUMNS} FROM public.qa_collections ORDER BY id <> 'default', length(id), id")
        return [self._collection(r) for r in rows]

    def get(self, name: str) -> Collection:
        rows = self.db.rows(f"SELECT {_COLUMNS} FROM public.qa_collections WHERE name = %s", (name,))
        if not rows:
            raise CollectionNotFoundError(f"Collection {name!r} not found.")
        return self._collection(rows[0])

    def create(self, name: str, public: bool = False) -> Collection:
        validate_name(name)
        with self.db.transaction(writer_lock=False) as conn:
            row = conn.execute(
                "INSERT INTO public.qa_collections(name, public, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                (name, public, time.time()),
            ).fetchone()
        if row is None:
            raise CollectionExistsError(f"A collection named {name!r} already exists.")
        return self.get(name)

    def update(self, name: str, new_name: str | None = None, public: bool | None = None) -> Collection:
        current = self.get(name)
        renamed = new_name is not None and new_name != name
        if renamed:
            check_not_default(name, "renamed")
            validate_name(new_name)
        try:
            with self.db.transaction(writer_lock=False) as conn:
                if renamed:
                    conn.execute("UPDATE public.qa_collections SET name = %s WHERE id = %s", (new_name, current.id))
                if public is not None:
                    conn.execute("UPDATE public.qa_collections SET public = %s WHERE id = %s", (public, current.id))
        except psycopg.errors.UniqueViolation as exc:
            raise CollectionExistsError(f"A collection named {new_name!r} already exists.") from exc
        return self.get(new_name if renamed and new_name else name)

    def delete(self, name: str) -> Collection:
        """Remove the collection with its schema (documents, vectors, keyword rows) in one transaction."""
        check_not_default(name, "deleted")
        with self.db.transaction() as conn:
            row = conn.execute(
                f"DELETE FROM public.qa_collections WHERE name = %s RETURNING {_COLUMNS}", (name,)
            ).fetchone()
            if row is None:
                raise CollectionNotFoundError(f"Collection {name!r} not found.")
            gone = Collection(str(row[0]), str(row[1]), bool(row[2]), float(row[3]))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema_name(gone.id))))
            failpoint("collection_delete_before_commit")
        failpoint("collection_delete_after_commit")
        with self._lock:
            store = self._stores.pop(gone.id, None)
        if store is not None:
            store.release()
        return gone

    # --- stores ------------------------------------------------------------------------------------
    def store(self, name: str) -> PgvectorSentenceStore:
        """The store of collection `name` (its schema is created when first opened)."""
        return self.store_by_id(self.get(name).id)

    def store_by_id(self, collection_id: str) -> PgvectorSentenceStore:
        with self._lock:
            store = self._stores.get(collection_id)
            if store is None:
                store = PgvectorSentenceStore(create=True, schema=schema_name(collection_id), **self._store_args)
                self._stores[collection_id] = store
            return store

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.release()
        self.db.close()
