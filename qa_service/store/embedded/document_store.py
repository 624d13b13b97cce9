"""FAISS (vectors) + tantivy (keywords) + SQLite (documents, metadata) as one Haystack DocumentStore.

Durability: every change is one SQLite transaction. New FAISS files and tantivy directories are written
under the next generation number *before* the transaction commits the generation pointer, so a crash at
any point leaves the previous generation loadable; stray files of an uncommitted generation are removed
on open (a write: `qa_service.store.embedded.writer`; the files of a generation:
`qa_service.store.embedded.generations`; the keyword side's design: `qa_service.store.embedded.lexical`;
read-only SQL: `qa_service.store.embedded.queries`).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from haystack import Document, default_from_dict, default_to_dict
from haystack.document_stores.types import DuplicatePolicy

from qa_service.errors import IndexMismatchError, IndexNotFoundError
from qa_service.store import token_codes
from qa_service.store.embedded import generations, queries
from qa_service.store.embedded.database import PAGE_SIZE, SCHEMA_VERSION, Database
from qa_service.store.embedded.generations import Snapshot, check_schema_version
from qa_service.store.embedded.vectors import VectorIndex
from qa_service.store.embedded.writer import CORPUS_HASH_KEY, Layout, committed_corpus_hash, write_generation
from qa_service.store.failpoints import failpoint
from qa_service.store.manifest import Manifest
from qa_service.store.records import ApplyResult, SourceDocument, StoredDocument
from qa_service.store.sentences import (
    VECTOR_TYPES,
    unblob,
    unblob_many,
    upserts_from_sentences,
    validate_source,
)

logger = logging.getLogger(__name__)

DB_FILE = "store.sqlite"
_SENTENCE_ID = re.compile(r"^(?P<doc>.+):s(?P<k>\d+)$")
_PIN_ATTEMPTS = 5


class FaissSQLiteDocumentStore:
    """Sentence-level Haystack DocumentStore persisted under one directory."""

    def __init__(
        self,
        index_dir: str,
        model: str,
        dimension: int,
        faiss_index: str = "Flat",
        nprobe: int = 16,
        ef_search: int = 64,
        create: bool = True,
        passage_ef_search: int | None = None,  # default: ef_search
        vector_storage: str = "float32",  # width of the vectors SQLite keeps: float32 or float16
        page_size: int = PAGE_SIZE,  # of a new database (`database.page_size_for`)
        refine: int = 1,  # dense sentence search: re-score refine x k FAISS hits with the stored vectors
    ) -> None:
        if vector_storage not in VECTOR_TYPES:
            raise ValueError(f"vector_storage must be one of {sorted(VECTOR_TYPES)}, not {vector_storage!r}.")
        self.index_dir = Path(index_dir)
        self.model, self.dimension, self.faiss_index = model, dimension, faiss_index
        self.nprobe, self.ef_search, self.create = nprobe, ef_search, create
        self.passage_ef_search, self.vector_storage, self.page_size = passage_ef_search, vector_storage, page_size
        self.refine = refine
        db_path = self.index_dir / DB_FILE
        if not db_path.exists():
            if not create:
                raise IndexNotFoundError(f"No index in {self.index_dir}; run `qa-service index PATH` first.")
            self.index_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(db_path, page_size)
        self._local = threading.local()  # the generation pinned by this thread's `snapshot()`
        self._swap_lock = threading.Lock()
        self._pending: Snapshot | None = None  # written, being committed by this process
        self._snapshot = self._open()

    # --- opening -------------------------------------------------------------------------------
    def _open(self) -> Snapshot:
        generations.upgrade_keywords(self.db, self.index_dir)
        meta = self.db.read_meta()
        if not meta:
            now = str(time.time())
            with self.db.transaction() as conn:
                Database.write_meta(
                    conn,
                    {
                        "schema_version": SCHEMA_VERSION,
                        "model": self.model,
                        "dimension": str(self.dimension),
                        "faiss_index": self.faiss_index,
                        "generation": "0",
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            snapshot = self._empty_snapshot(0)
        else:
            check_schema_version(meta.get("schema_version"), self.index_dir)
            token_codes.check_readable(meta.get(token_codes.META_KEY))
            self._manifest_from(meta).check_compatible(self.model, self.dimension, self.index_dir)
            snapshot = self._load_generation(int(meta["generation"]), meta["faiss_index"])
            if meta["faiss_index"] != self.faiss_index:
                logger.info("Rebuilding vectors as %s (was %s)", self.faiss_index, meta["faiss_index"])
                self._snapshot = snapshot
                self.apply([], [], rebuild=True)
                snapshot = self._snapshot
        self._snapshot = snapshot
        self._cleanup()
        self.manifest().write(self.index_dir)
        return snapshot

    def _empty_snapshot(self, generation: int) -> Snapshot:
        return generations.empty(self.faiss_index, self.dimension, generation)

    def _load_generation(self, generation: int, spec: str) -> Snapshot:
        held = getattr(self, "_snapshot", None)  # its bases are reused where the files are the same
        snapshot = generations.load(
            self.db, self.index_dir, generation, spec, self.dimension, held, lambda: self.counts()[1:]
        )
        self._set_search_params(snapshot.sentences, snapshot.passages)
        return snapshot

    def _set_search_params(self, sentences: VectorIndex, passages: VectorIndex) -> None:
        sentences.set_search_params(self.nprobe, self.ef_search)
        passages.set_search_params(self.nprobe, self.passage_ef_search or self.ef_search)

    def _cleanup(self) -> None:
        generations.cleanup(self.db, self.index_dir)

    def refresh(self) -> Snapshot:
        """The generation this thread reads: the one pinned by `snapshot()`, else the latest committed
        one (picking up a generation committed by another process, e.g. the CLI indexer)."""
        pinned: Snapshot | None = getattr(self._local, "snapshot", None)
        if pinned is not None:
            return pinned
        with self.snapshot():
            latest: Snapshot = self._local.snapshot
        return latest

    @property
    def generation(self) -> int:
        return self.refresh().generation

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one committed generation: a SQLite read transaction held on this
        thread's connection, and the FAISS indexes of the generation it shows (kept in memory while
        pinned, whatever writers commit or remove meanwhile)."""
        if getattr(self._local, "snapshot", None) is not None:  # nested: the outer snapshot holds
            yield
            return
        with self.db.connection() as conn:
            began = not conn.in_transaction  # else: inside this thread's write transaction, its state
            self._local.snapshot = self._pin(conn) if began else self._snapshot
            try:
                yield
            finally:
                self._local.snapshot = None
                if began and conn.in_transaction:
                    conn.execute("ROLLBACK")  # read only: nothing to commit

    def _pin(self, conn: sqlite3.Connection) -> Snapshot:
        """BEGIN a read transaction and return the vectors of the generation it shows."""
        for attempt in range(_PIN_ATTEMPTS):
            conn.execute("BEGIN")
            try:
                generation = int(Database.read_value(conn, "generation"))  # fixes the read snapshot
                for candidate in (self._snapshot, self._pending):
                    if candidate is not None and candidate.generation == generation:
                        return candidate
                if generation > self._snapshot.generation:  # committed by another process
                    loaded = self._load_generation(generation, self.faiss_index)
                    with self._swap_lock:
                        if loaded.generation > self._snapshot.generation:
                            self._snapshot = loaded
                    return loaded
                # Older than ours: this process committed after the read began; read again.
            except (IndexMismatchError, RuntimeError, OSError):
                # Its files went because a newer generation was committed meanwhile: read again.
                if attempt == _PIN_ATTEMPTS - 1:
                    conn.execute("ROLLBACK")
                    raise
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("ROLLBACK")
        raise IndexMismatchError("The index changed faster than it could be read; try again.")

    def close(self) -> None:
        self.db.close()

    # --- manifest --------------------------------------------------------------------------------
    @property
    def sentence_index(self) -> VectorIndex:
        return self.refresh().sentences

    @property
    def sentence_count(self) -> int:
        """Live sentences of the served generation, from memory (no table scan on the query path)."""
        return self.refresh().sentences.size

    def counts(self) -> tuple[int, int, int]:
        """(documents, sentences, passages): cheap, for health checks and metrics."""
        row = self.db.query(
            "SELECT (SELECT COUNT(*) FROM documents) AS d, (SELECT COUNT(*) FROM sentences) AS s, "
            "(SELECT COUNT(*) FROM passages) AS p"
        )[0]
        return int(row["d"]), int(row["s"]), int(row["p"])

    def _manifest_from(self, meta: dict[str, str]) -> Manifest:
        documents, sentences, passages = self.counts()
        with self.db.connection() as conn:
            hashes = meta.get(CORPUS_HASH_KEY) or committed_corpus_hash(conn)
        return Manifest(
            schema_version=meta["schema_version"],
            model=meta["model"],
            dimension=int(meta["dimension"]),
            faiss_index=meta["faiss_index"],
            generation=int(meta["generation"]),
            documents=documents,
            sentences=sentences,
            passages=passages,
            corpus_hash=hashes,
            created_at=float(meta["created_at"]),
            updated_at=float(meta["updated_at"]),
            token_code=meta.get(token_codes.META_KEY, "int8"),
        )

    def manifest(self) -> Manifest:
        return self._manifest_from(self.db.read_meta())

    @property
    def token_code(self) -> str:
        """The code of this index's token vectors ('' while it holds no sentence: it takes any)."""
        return (self.db.read_meta().get(token_codes.META_KEY) or "int8") if self.sentence_count else ""

    # --- writing ---------------------------------------------------------------------------------
    def bulk_load(self, chars: int) -> AbstractContextManager[None]:
        """Nothing to defer: each batch's vectors go to the delta, merged into the base past DELTA_MAX."""
        del chars
        return nullcontext()

    def apply(
        self,
        upserts: list[SourceDocument],
        deletes: list[str],
        sentence_deletes: list[int] | None = None,
        rebuild: bool = False,
    ) -> ApplyResult:
        """Replace/insert `upserts` and delete `deletes` (document ids) as one atomic generation."""
        for doc in upserts:
            validate_source(doc, self.dimension)
        try:
            generation, deleted = self._write(upserts, deletes, sentence_deletes, rebuild)
        except BaseException:
            self._pending = None  # never committed: no reader can have seen it
            raise
        with self._swap_lock:
            if self._pending is not None:
                self._snapshot, self._pending = self._pending, None
        failpoint("after_commit")
        self.manifest().write(self.index_dir)
        self._cleanup()
        self.db.release_wal()
        return ApplyResult(generation, [d.id for d in upserts], deleted)

    def _write(
        self, upserts: list[SourceDocument], deletes: list[str], sentence_deletes: list[int] | None, rebuild: bool
    ) -> tuple[int, list[str]]:
        """One write transaction (`writer.write_generation`) on top of the latest committed generation."""
        with self.db.transaction() as conn:
            current = int(Database.read_value(conn, "generation"))
            if current != self._snapshot.generation:  # another process committed since we loaded
                self._snapshot = self._load_generation(current, self.faiss_index)
            layout = Layout(self.index_dir, self.faiss_index, self.dimension, self.vector_storage)
            written, deleted = write_generation(
                conn, layout, self._snapshot, upserts, deletes, sentence_deletes or [], rebuild, self._set_search_params
            )
            # Readers that see the new generation committed before `apply` swaps it in take these.
            self._pending = written
        return written.generation, deleted

    # --- reading ---------------------------------------------------------------------------------
    def dense_sentences(
        self, query: np.ndarray, k: int, filters: dict[str, Any] | None = None
    ) -> list[tuple[int, float]]:
        if filters:
            return self._filtered_dense(query, k, filters)
        index = self.refresh().sentences
        if self.refine <= 1:
            return index.search(query, k)
        return self._rescored(index.search(query, k * self.refine), query, k)

    def _rescored(self, hits: list[tuple[int, float]], query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` of `hits` nearest to `query` by their stored vectors (inner product, as FAISS's)."""
        return self._nearest(self.db.embeddings("sentences", [i for i, _ in hits]), query, k)

    def _nearest(self, blobs: dict[int, bytes], query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Exact search among the sentences whose stored vectors `blobs` holds (by id)."""
        if not blobs:
            return []
        ids = list(blobs)
        scores = unblob_many(list(blobs.values()), self.dimension) @ query.astype(np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def dense_passages(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self.refresh().passages.search(query, k)

    def _filtered_dense(self, query: np.ndarray, k: int, filters: dict[str, Any]) -> list[tuple[int, float]]:
        """Exact search over the rows the filter admits (filtering happens before ranking)."""
        return self._nearest(queries.filtered_embeddings(self.db, filters), query, k)

    def allowed_sentence_ids(self, filters: dict[str, Any]) -> list[int]:
        return queries.allowed_sentence_ids(self.db, filters)

    def keyword_sentences(self, text: str, k: int, restrict: list[int] | None = None) -> list[tuple[int, float]]:
        return self.refresh().sentence_keywords.search(text, k, restrict)

    def keyword_passages(self, text: str, k: int, restrict: list[int] | None = None) -> list[tuple[int, float]]:
        return self.refresh().passage_keywords.search(text, k, restrict)

    def sentence_rows(self, ids: list[int], vectors: bool = True) -> list[sqlite3.Row]:
        return self.db.sentences_by_ids(ids, vectors)

    def sentences_of_passages(self, passage_ids: list[int]) -> list[int]:
        return queries.sentences_of_passages(self.db, passage_ids)

    def term_frequencies(self, terms: list[str]) -> dict[str, int]:
        return self.db.term_frequencies(terms)

    def passage_vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        return {k: unblob(v, self.dimension) for k, v in self.db.embeddings("passages", ids).items()}

    def documents_under(self, scopes: list[str]) -> dict[str, StoredDocument]:
        """Stored documents whose origin is one of `scopes` or lies under one of them, by origin."""
        return queries.documents_under(self.db, scopes)

    def list_documents(self, document_id: str | None = None) -> list[StoredDocument]:
        """All documents by source name, or the one with `document_id`."""
        if document_id is not None:
            return queries.documents(self.db, "WHERE id = ?", [document_id])
        return queries.documents(self.db)

    def has_sentence(self, document_id: str, start: int, end: int) -> bool:
        sql = 'SELECT 1 FROM sentences WHERE document_id = ? AND start = ? AND "end" = ? LIMIT 1'
        return bool(self.db.query(sql, (document_id, start, end)))

    def document_text(self, document_id: str) -> str | None:
        rows = self.db.query("SELECT text FROM documents WHERE id = ?", (document_id,))
        return rows[0]["text"] if rows else None

    # --- Haystack DocumentStore protocol -----------------------------------------------------------
    def count_documents(self) -> int:
        return int(self.db.query("SELECT COUNT(*) AS n FROM sentences")[0]["n"])

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        return queries.filtered_documents(self.db, filters, self.dimension)

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write embedded sentence Documents. Sentences sharing `meta["document_id"]` form one source
        document (joined by newlines); `policy` applies per source document."""
        upserts = upserts_from_sentences(documents, policy, {d.id for d in self.list_documents()})
        self.apply(upserts, [])
        return sum(len(d.sentences) for d in upserts)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Accepts source document ids and sentence ids (`<document_id>:s<k>`)."""
        sentence_rows: list[int] = []
        docs: list[str] = []
        for ident in document_ids:
            match = _SENTENCE_ID.match(ident)
            if match:
                sentence_rows += queries.sentence_ids_at(self.db, match.group("doc"), int(match.group("k")))
            else:
                docs.append(ident)
        self.apply([], docs, sentence_deletes=sentence_rows)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            index_dir=str(self.index_dir),
            model=self.model,
            dimension=self.dimension,
            faiss_index=self.faiss_index,
            nprobe=self.nprobe,
            ef_search=self.ef_search,
            create=self.create,
            passage_ef_search=self.passage_ef_search,
            vector_storage=self.vector_storage,
            page_size=self.page_size,
            refine=self.refine,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaissSQLiteDocumentStore:
        return default_from_dict(cls, data)
