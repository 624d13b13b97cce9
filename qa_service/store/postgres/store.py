"""PostgreSQL + pgvector backend (QA_STORE=pgvector): the same sentence store, shared by replicas.

Sentences and passages live in two tables of Haystack's `PgvectorDocumentStore` (pgvector-haystack):
the integration creates them with their HNSW (cosine) and full-text GIN indexes, translates Haystack
filters to SQL and converts Documents to rows and back; this class runs the searches inside one read
snapshot per answer and writes whole documents in one transaction.

A sentence row is a Haystack Document: id `<document_id>:s<k>`, content = the sentence, embedding =
its titled vector, blob = its token vectors (int8 or PQ codes, `qa_service.quantize`), meta = offsets,
passage id, source and the document's metadata (what filters see). The source text, term frequencies and counters are in
`qa_documents`, `qa_term_df` and `qa_meta`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from haystack import Document, default_from_dict, default_to_dict
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils import Secret, deserialize_secrets_inplace
from haystack_integrations.document_stores.pgvector import PgvectorDocumentStore
from haystack_integrations.document_stores.pgvector.filters import _convert_filters_to_where_clause_and_params
from psycopg import sql

from qa_service.errors import InvalidInputError
from qa_service.store import token_codes
from qa_service.store.manifest import Manifest, corpus_hash
from qa_service.store.postgres import bm25, bulk, keyword
from qa_service.store.postgres.pool import DEFAULT_TIMEOUT, Postgres
from qa_service.store.postgres.rows import as_vector, count_terms, insert_documents
from qa_service.store.postgres.schema import PASSAGES, SENTENCES, IndexIdentity, Tables, create_schema, read_meta
from qa_service.store.records import ApplyResult, SourceDocument, StoredDocument
from qa_service.store.sentences import upserts_from_sentences, validate_source

_SENTENCE_ID = re.compile(r"^(?P<doc>.+):s(?P<k>\d+)$")
_RESERVED = ("document_id", "source", "start", "end", "sentence_index", "passage_id", "indexed_at")


def _where(filters: dict[str, Any]) -> tuple[sql.Composable, tuple[Any, ...]]:
    """A Haystack filter as ` WHERE ...` and its parameters (the integration's translation)."""
    try:
        where, params = _convert_filters_to_where_clause_and_params(filters)
    except FilterError as exc:
        raise InvalidInputError(f"Invalid filter: {exc}") from exc
    return where, tuple(params)


class PgvectorSentenceStore:
    """Sentence-level store over PostgreSQL + pgvector; any number of processes may share it."""

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
        schema: str = "public",
        keyword_ranking: str = "bm25",
        bulk_min_chars: int = 1_000_000,
        maintenance_work_mem: str = "1GB",
    ) -> None:
        if keyword_ranking not in ("bm25", "ts_rank_cd"):
            raise InvalidInputError(f"Unknown keyword ranking {keyword_ranking!r} (bm25 or ts_rank_cd).")
        self.keyword_ranking = keyword_ranking
        self.connection_string, self.model, self.dimension = connection_string, model, dimension
        self.schema, self.t = schema, Tables(schema)  # the collection's schema (`public`: default)
        self.pool_size, self.ef_search, self.language, self.create = pool_size, ef_search, language, create
        self.timeout = timeout
        self.bulk_min_chars, self.maintenance_work_mem = bulk_min_chars, maintenance_work_mem
        url = connection_string.resolve_value() or ""
        self.db = Postgres.shared(url, pool_size, ef_search, timeout)
        self.sentences, self.passages = (
            PgvectorDocumentStore(
                connection_string=connection_string,
                table_name=table,
                schema_name=schema,
                embedding_dimension=dimension,
                vector_function="cosine_similarity",
                search_strategy="hnsw",
                hnsw_index_name=f"{table}_hnsw",
                hnsw_ef_search=ef_search,
                keyword_index_name=f"{table}_keyword",
                language=language,
            )
            for table in (SENTENCES, PASSAGES)
        )
        self._lang = sql.Literal(language)
        identity = IndexIdentity(model, dimension, language)
        self.db.setup(
            lambda conn: create_schema(conn, (self.sentences, self.passages), identity, self.db.where, create, schema)
        )

    def _meta(self) -> dict[str, str]:
        with self.db.connection() as conn:
            return read_meta(conn, self.schema)

    @property
    def generation(self) -> int:
        return int(self._meta().get("generation", 0))

    @property
    def sentence_count(self) -> int:
        rows = self.db.rows(f"SELECT value FROM {self.t.meta} WHERE key = 'sentences'")
        return int(rows[0]["value"]) if rows else 0

    def counts(self) -> tuple[int, int, int]:
        meta = self._meta()
        return int(meta.get("documents", 0)), int(meta.get("sentences", 0)), int(meta.get("passages", 0))

    def manifest(self) -> Manifest:
        meta = self._meta()
        hashes = [r["content_hash"] for r in self.db.rows(f"SELECT content_hash FROM {self.t.documents}")]
        documents, sentences, passages = self.counts()
        return Manifest(
            schema_version=meta["schema_version"],
            model=meta["model"],
            dimension=int(meta["dimension"]),
            faiss_index=f"pgvector-hnsw(ef_search={self.ef_search})",
            generation=int(meta["generation"]),
            documents=documents,
            sentences=sentences,
            passages=passages,
            corpus_hash=corpus_hash(hashes),
            created_at=float(meta["created_at"]),
            updated_at=float(meta["updated_at"]),
            token_code=meta.get(token_codes.META_KEY, "int8"),
        )

    @property
    def token_code(self) -> str:
        """The code of this database's token vectors ('' while it holds no sentence: it takes any)."""
        return (self._meta().get(token_codes.META_KEY) or "int8") if self.sentence_count else ""

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one committed state (one answer = one snapshot)."""
        with self.db.snapshot():
            yield

    def release(self) -> None:
        """Close this store's own connections (the shared pool stays open for other collections)."""
        for store in (self.sentences, self.passages):
            store.close()

    def close(self) -> None:
        self.release()
        self.db.close()

    # --- writing ---------------------------------------------------------------------------------
    @contextmanager
    def bulk_load(self, chars: int) -> Iterator[None]:
        """Writes of `chars` characters follow. Into an empty collection, at least `bulk_min_chars` of
        them: its HNSW and GIN indexes are dropped now and built once when the block ends, however it
        ends (`store/postgres/bulk.py`). Otherwise nothing changes."""
        if not self.bulk_min_chars or chars < self.bulk_min_chars or self.sentence_count:
            yield
            return
        with self.db.transaction() as conn:
            statements = bulk.drop_search_indexes(conn, self.schema)
        try:
            yield
        finally:
            with self.db.transaction() as conn:
                bulk.build_search_indexes(conn, statements, self.maintenance_work_mem)

    def apply(
        self,
        upserts: list[SourceDocument],
        deletes: list[str],
        sentence_deletes: list[str] | None = None,
        rebuild: bool = False,
    ) -> ApplyResult:
        """Replace/insert `upserts` and delete `deletes` (document ids) in one transaction."""
        del rebuild  # HNSW in PostgreSQL is maintained row by row; nothing to rebuild
        for doc in upserts:
            validate_source(doc, self.dimension)
        targets = list(dict.fromkeys([*deletes, *(d.id for d in upserts)]))
        with self.db.transaction() as conn:
            gone_texts: list[str] = []
            gone_s = gone_p = 0
            if targets:
                rows = conn.execute(
                    f"DELETE FROM {self.t.sentences} WHERE meta->>'document_id' = ANY(%s) RETURNING content", (targets,)
                ).fetchall()
                gone_texts += [r[0] for r in rows]
                gone_s += len(rows)
                gone_p += conn.execute(
                    f"DELETE FROM {self.t.passages} WHERE meta->>'document_id' = ANY(%s)", (targets,)
                ).rowcount
            if sentence_deletes:
                rows = conn.execute(
                    f"DELETE FROM {self.t.sentences} WHERE id = ANY(%s) RETURNING content", (sentence_deletes,)
                ).fetchall()
                gone_texts += [r[0] for r in rows]
                gone_s += len(rows)
            removed = [
                r[0]
                for r in conn.execute(f"DELETE FROM {self.t.documents} WHERE id = ANY(%s) RETURNING id", (targets,))
            ]
            now = time.time()
            row = conn.execute(f"SELECT value FROM {self.t.meta} WHERE key = %s", (token_codes.META_KEY,)).fetchone()
            code = token_codes.settle(
                row[0] if row else None,
                lambda: conn.execute(f"SELECT 1 FROM {self.t.sentences} LIMIT 1").fetchone() is not None,
                token_codes.batch_code(upserts, self.dimension),
            )
            if code:
                conn.execute(
                    f"INSERT INTO {self.t.meta}(key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (token_codes.META_KEY, code),
                )
            insert_documents(conn, upserts, now, self.t.sentences, self.t.passages, self.t.documents)
            new_texts = [d.text[a:b] for d in upserts for a, b, _ in d.sentences]
            count_terms(conn, gone_texts, new_texts, self.t.term_df)
            generation = int(
                conn.execute(
                    f"UPDATE {self.t.meta} SET value = (value::bigint + 1)::text "
                    "WHERE key = 'generation' RETURNING value"
                ).fetchone()[0]  # type: ignore[index]
            )
            deltas = {
                "documents": len(upserts) - len(removed),
                "sentences": len(new_texts) - gone_s,
                "passages": sum(len(d.passages) for d in upserts) - gone_p,
            }
            with conn.cursor() as cur:
                cur.executemany(
                    f"UPDATE {self.t.meta} SET value = (value::bigint + %s)::text WHERE key = %s",
                    [(delta, key) for key, delta in deltas.items()],
                )
                cur.execute(f"UPDATE {self.t.meta} SET value = %s WHERE key = 'updated_at'", (str(now),))
        gone = set(removed)
        deleted = [d for d in deletes if d in gone]
        return ApplyResult(generation, [d.id for d in upserts], deleted)

    # --- reading: search -------------------------------------------------------------------------
    def _dense(self, table: str, query: np.ndarray, k: int, filters: dict[str, Any] | None) -> list[tuple[str, float]]:
        """Nearest rows by cosine distance through the HNSW index (filters: the integration's
        translation to SQL). Only ids and scores are selected: the integration's own query selects
        every column, and sorting those rows de-TOASTs each token blob (8 ms on the SQuAD subset)."""
        vector = np.asarray(query, dtype=np.float32)
        if vector.shape != (self.dimension,):
            raise InvalidInputError(f"Query vector of shape {vector.shape}; the index expects ({self.dimension},).")
        where, params = _where(filters) if filters else (sql.SQL(""), ())
        query_sql = (
            sql.SQL("SELECT id, 1 - (embedding <=> %s) AS score FROM {table}").format(
                table=sql.Identifier(self.schema, table)
            )
            + where
            + sql.SQL(" ORDER BY embedding <=> %s LIMIT %s")
        )
        rows = self.db.rows(query_sql, (vector, *params, vector, k))
        return [(r["id"], float(r["score"])) for r in rows]

    def dense_sentences(
        self, query: np.ndarray, k: int, filters: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        return self._dense(SENTENCES, query, k, filters)

    def dense_passages(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        return self._dense(PASSAGES, query, k, None)

    def allowed_sentence_ids(self, filters: dict[str, Any]) -> list[str]:
        where, params = _where(filters)
        return [r["id"] for r in self.db.rows(sql.SQL(f"SELECT id FROM {self.t.sentences}") + where, params)]

    def _keyword(self, table: str, text: str, k: int, restrict: list[str] | None) -> list[tuple[str, float]]:
        """The `k` rows of best keyword score among those sharing a term with the text (and in
        `restrict` if given): BM25 through the sparse-vector index (store/postgres/keyword.py), or
        the previous ts_rank_cd ranking when `keyword_ranking` asks for it."""
        if restrict is not None and not restrict:
            return []
        name = sql.Identifier(self.schema, table)
        if self.keyword_ranking == "ts_rank_cd":
            return keyword.ts_rank_cd_search(self.db, name, self._lang, text, k, restrict)
        words = bm25.query_terms(text)
        if not words:
            return []
        query = keyword.BM25Query(text, words, self.term_frequencies(words), self.sentence_count)
        return keyword.bm25_search(self.db, name, self._lang, query, k, restrict)

    def keyword_sentences(self, text: str, k: int, restrict: list[str] | None = None) -> list[tuple[str, float]]:
        return self._keyword(SENTENCES, text, k, restrict)

    def keyword_passages(self, text: str, k: int, restrict: list[str] | None = None) -> list[tuple[str, float]]:
        return self._keyword(PASSAGES, text, k, restrict)

    # --- reading: rows ---------------------------------------------------------------------------
    def sentence_rows(self, ids: list[str], vectors: bool = True) -> list[dict[str, Any]]:
        """Rows shaped like the embedded store's: offsets, text, source; `vectors` adds the titled
        embedding (float32 bytes) and the token blob."""
        if not ids:
            return []
        columns = "id, content, meta" + (", embedding, blob_data" if vectors else "")
        rows = self.db.rows(f"SELECT {columns} FROM {self.t.sentences} WHERE id = ANY(%s)", (list(ids),))
        out = []
        for r in rows:
            meta = r["meta"]
            row = {
                "id": r["id"],
                "document_id": meta["document_id"],
                "passage_id": meta["passage_id"],
                "sentence_index": meta["sentence_index"],
                "start": meta["start"],
                "end": meta["end"],
                "text": r["content"],
                "source": meta["source"],
            }
            if vectors:
                row["embedding"] = as_vector(r["embedding"]).tobytes()
                row["tokens"] = bytes(r["blob_data"] or b"")
            out.append(row)
        return out

    def sentences_of_passages(self, passage_ids: list[str]) -> list[str]:
        if not passage_ids:
            return []
        rows = self.db.rows(f"SELECT id FROM {self.t.sentences} WHERE meta->>'passage_id' = ANY(%s)", (passage_ids,))
        return [r["id"] for r in rows]

    def passage_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        rows = self.db.rows(f"SELECT id, embedding FROM {self.t.passages} WHERE id = ANY(%s)", (list(ids),))
        return {r["id"]: as_vector(r["embedding"]) for r in rows}

    def term_frequencies(self, terms: list[str]) -> dict[str, int]:
        if not terms:
            return {}
        rows = self.db.rows(f"SELECT term, df FROM {self.t.term_df} WHERE term = ANY(%s)", (terms,))
        return {r["term"]: int(r["df"]) for r in rows}

    # --- reading: documents ------------------------------------------------------------------------
    def documents_under(self, scopes: list[str]) -> dict[str, StoredDocument]:
        """Stored documents whose origin is one of `scopes` or lies under one of them, by origin."""
        if not scopes:
            return {}
        # Two array parameters whatever the count (a statement takes at most 65,535 parameters; an
        # upload of 240,000 documents asks for 240,000 origins), each matched through the byte-order
        # index on origin: the scope itself, or the range [scope/, scope0) of the origins under it.
        documents, by_bytes = self.t.documents, 'origin COLLATE "C"'
        where = (
            f"WHERE id IN (SELECT d.id FROM unnest(%s::text[]) AS s(scope) "
            f"JOIN {documents} d ON d.{by_bytes} = s.scope "
            f"UNION ALL SELECT u.id FROM unnest(%s::text[]) AS f(folder), LATERAL (SELECT id FROM {documents} "
            f"WHERE {by_bytes} >= f.folder || '/' AND {by_bytes} < f.folder || '0') u)"
        )
        return {d.origin: d for d in self._documents(where, [scopes, [s.rstrip("/") for s in scopes]])}

    def list_documents(self, document_id: str | None = None) -> list[StoredDocument]:
        if document_id is not None:
            return self._documents("WHERE id = %s", [document_id])
        return self._documents("", [])

    def _documents(self, where: str, params: list[Any]) -> list[StoredDocument]:
        rows = self.db.rows(
            f"SELECT id, source, origin, content_hash, indexed_at, sentence_count, meta FROM {self.t.documents} "
            f"{where} ORDER BY source, id",
            params,
        )
        return [
            StoredDocument(
                r["id"], r["source"], r["origin"], r["content_hash"], r["indexed_at"], r["sentence_count"], r["meta"]
            )
            for r in rows
        ]

    def has_sentence(self, document_id: str, start: int, end: int) -> bool:
        rows = self.db.rows(
            f"SELECT 1 FROM {self.t.sentences} WHERE meta->>'document_id' = %s AND (meta->>'start')::int = %s "
            "AND (meta->>'end')::int = %s LIMIT 1",
            (document_id, start, end),
        )
        return bool(rows)

    def document_text(self, document_id: str) -> str | None:
        rows = self.db.rows(f"SELECT text FROM {self.t.documents} WHERE id = %s", (document_id,))
        return rows[0]["text"] if rows else None

    # --- Haystack DocumentStore protocol -----------------------------------------------------------
    def count_documents(self) -> int:
        return self.sentence_count

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        try:
            docs = self.sentences.filter_documents(filters)
        except FilterError as exc:
            raise InvalidInputError(f"Invalid filter: {exc}") from exc
        out = []
        for doc in docs:
            meta = {k: doc.meta[k] for k in _RESERVED if k in doc.meta and k != "indexed_at"}
            out.append(
                Document(id=doc.id, content=doc.content, meta={**meta, "row_id": doc.id}, embedding=doc.embedding)
            )
        return sorted(out, key=lambda d: (d.meta["document_id"], d.meta["sentence_index"]))

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write embedded sentence Documents; those sharing `meta["document_id"]` form one source document."""
        upserts = upserts_from_sentences(documents, policy, {d.id for d in self.list_documents()})
        self.apply(upserts, [])
        return sum(len(d.sentences) for d in upserts)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Accepts source document ids and sentence ids (`<document_id>:s<k>`)."""
        sentences = [i for i in document_ids if _SENTENCE_ID.match(i)]
        docs = [i for i in document_ids if not _SENTENCE_ID.match(i)]
        self.apply([], docs, sentence_deletes=sentences)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            connection_string=self.connection_string.to_dict(),
            model=self.model,
            dimension=self.dimension,
            pool_size=self.pool_size,
            ef_search=self.ef_search,
            language=self.language,
            create=self.create,
            timeout=self.timeout,
            schema=self.schema,
            keyword_ranking=self.keyword_ranking,
            bulk_min_chars=self.bulk_min_chars,
            maintenance_work_mem=self.maintenance_work_mem,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PgvectorSentenceStore:
        data = dict(data)
        deserialize_secrets_inplace(data["init_parameters"], keys=["connection_string"])
        return default_from_dict(cls, data)
