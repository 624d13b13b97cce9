"""Collections of the embedded backend: a catalog table at the index root, one store per collection.

The index directory itself (store.sqlite, *.faiss, manifest.json) is collection `default`, so an index
built before collections is used in place. Every other collection is a whole `FaissSQLiteDocumentStore`
under `collections/<id>/`. The catalog is a table of the root `store.sqlite`:

- create / rename / toggle: one catalog transaction (a new collection's directory is made when its
  store is first opened);
- delete: one transaction removes the catalog row (the collection is gone when it commits), then its
  directory is removed; on open, directories the catalog does not list are removed, so a crash in
  between leaves the collection whole or gone.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from qa_service.errors import CollectionExistsError, CollectionNotFoundError, IndexNotFoundError
from qa_service.store.collections import DEFAULT, check_not_default, validate_name
from qa_service.store.embedded.database import PAGE_SIZE, SCHEMA_VERSION, UPGRADABLE_VERSIONS, Database
from qa_service.store.embedded.document_store import DB_FILE, FaissSQLiteDocumentStore
from qa_service.store.failpoints import failpoint
from qa_service.store.records import Collection

logger = logging.getLogger(__name__)

COLLECTIONS_DIR = "collections"
_CATALOG = """
CREATE TABLE IF NOT EXISTS collections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    public INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""


class EmbeddedCatalog:
    """The collections of one index directory and their (lazily opened, cached) stores."""

    def __init__(
        self,
        index_dir: str | Path,
        model: str,
        dimension: int,
        faiss_index: str = "Flat",
        nprobe: int = 16,
        ef_search: int = 64,
        create: bool = True,
        passage_ef_search: int | None = None,
        vector_storage: str = "float32",
        page_size: int = PAGE_SIZE,
        refine: int = 1,
    ) -> None:
        self.index_dir = Path(index_dir)
        self._store_args = {
            "model": model,
            "dimension": dimension,
            "faiss_index": faiss_index,
            "nprobe": nprobe,
            "ef_search": ef_search,
            "passage_ef_search": passage_ef_search,
            "vector_storage": vector_storage,
            "page_size": page_size,
            "refine": refine,
        }
        if not (self.index_dir / DB_FILE).exists():
            if not create:
                raise IndexNotFoundError(f"No index in {self.index_dir}; run `qa-service index PATH` first.")
            self.index_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.index_dir / DB_FILE, page_size)
        self._upgrade()
        self._lock = threading.Lock()
        self._stores: dict[str, FaissSQLiteDocumentStore] = {
            DEFAULT: FaissSQLiteDocumentStore(str(self.index_dir), create=create, **self._store_args)  # type: ignore[arg-type]
        }
        self._sweep()

    def _upgrade(self) -> None:
        """Create the catalog (with `default`) and move a schema-2 index to this version, in one
        transaction; nothing else of an older index changes."""
        with self.db.transaction() as conn:
            conn.execute(_CATALOG)
            conn.execute(
                "INSERT OR IGNORE INTO collections(id, name, public, created_at) VALUES (?, ?, 1, ?)",
                (DEFAULT, DEFAULT, time.time()),
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and row[0] in UPGRADABLE_VERSIONS:
                logger.info("Upgrading the index in %s from schema %s to %s", self.index_dir, row[0], SCHEMA_VERSION)
                Database.write_meta(conn, {"schema_version": SCHEMA_VERSION})

    def _sweep(self) -> None:
        """Remove directories of collections that are no longer in the catalog (a delete that crashed
        after its commit)."""
        root = self.index_dir / COLLECTIONS_DIR
        if not root.is_dir():
            return
        known = {c.id for c in self.list()}
        for path in root.iterdir():
            if path.name not in known:
                logger.info("Removing %s (its collection was deleted)", path)
                shutil.rmtree(path, ignore_errors=True)

    # --- catalog -----------------------------------------------------------------------------------
    @staticmethod
    def _collection(row: sqlite3.Row) -> Collection:
        return Collection(row["id"], row["name"], bool(row["public"]), float(row["created_at"]))

    def list(self) -> list[Collection]:
        rows = self.db.query("SELECT id, name, public, created_at FROM collections ORDER BY seq")
        return [self._collection(r) for r in rows]

    def get(self, name: str) -> Collection:
        rows = self.db.query("SELECT id, name, public, created_at FROM collections WHERE name = ?", (name,))
        if not rows:
            raise CollectionNotFoundError(f"Collection {name!r} not found.")
        return self._collection(rows[0])

    def create(self, name: str, public: bool = False) -> Collection:
        validate_name(name)
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone():
                raise CollectionExistsError(f"A collection named {name!r} already exists.")
            cur = conn.execute(
                "INSERT INTO collections(id, name, public, created_at) VALUES (?, ?, ?, ?)",
                (f"new:{name}", name, int(public), time.time()),
            )
            conn.execute("UPDATE collections SET id = ? WHERE seq = ?", (str(cur.lastrowid), cur.lastrowid))
        return self.get(name)

    def update(self, name: str, new_name: str | None = None, public: bool | None = None) -> Collection:
        current = self.get(name)
        if new_name is not None and new_name != name:
            check_not_default(name, "renamed")
            validate_name(new_name)
        with self.db.transaction() as conn:
            if new_name is not None and new_name != name:
                if conn.execute("SELECT 1 FROM collections WHERE name = ?", (new_name,)).fetchone():
                    raise CollectionExistsError(f"A collection named {new_name!r} already exists.")
                conn.execute("UPDATE collections SET name = ? WHERE id = ?", (new_name, current.id))
            if public is not None:
                conn.execute("UPDATE collections SET public = ? WHERE id = ?", (int(public), current.id))
        return self.get(new_name or name)

    def delete(self, name: str) -> Collection:
        check_not_default(name, "deleted")
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT id, name, public, created_at FROM collections WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise CollectionNotFoundError(f"Collection {name!r} not found.")
            gone = self._collection(row)
            conn.execute("DELETE FROM collections WHERE id = ?", (gone.id,))
            failpoint("collection_delete_before_commit")
        failpoint("collection_delete_after_commit")
        with self._lock:
            store = self._stores.pop(gone.id, None)
        if store is not None:
            store.close()
        shutil.rmtree(self._directory(gone.id), ignore_errors=True)
        return gone

    # --- stores ------------------------------------------------------------------------------------
    def _directory(self, collection_id: str) -> Path:
        return self.index_dir if collection_id == DEFAULT else self.index_dir / COLLECTIONS_DIR / collection_id

    def store(self, name: str) -> FaissSQLiteDocumentStore:
        """The store of collection `name` (opened on first use; a new collection's directory is
        created then)."""
        return self.store_by_id(self.get(name).id)

    def store_by_id(self, collection_id: str) -> FaissSQLiteDocumentStore:
        with self._lock:
            store = self._stores.get(collection_id)
            if store is None:
                directory = self._directory(collection_id)
                directory.mkdir(parents=True, exist_ok=True)
                store = FaissSQLiteDocumentStore(str(directory), create=True, **self._store_args)  # type: ignore[arg-type]
                self._stores[collection_id] = store
            return store

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()
        self.db.close()
