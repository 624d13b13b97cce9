"""Tables of the PostgreSQL backend and the checks made when a replica opens the database.

`qa_sentences` and `qa_passages` are created by pgvector-haystack's `PgvectorDocumentStore` (HNSW
cosine index, full-text GIN index); this module adds our indexes, inline vector storage, a stored
tsvector (GIN: the BM25 leg's candidates), the `bm25` sparse vectors with their HNSW index (pg-3),
and `qa_documents`, `qa_term_df` and `qa_meta` (which records what the database was indexed with,
so that a replica configured differently refuses to start).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from haystack_integrations.document_stores.pgvector import PgvectorDocumentStore
from psycopg import Connection, sql

from qa_service.errors import IndexMismatchError, IndexNotFoundError
from qa_service.store.postgres.bm25 import AVGDL, DIMENSION, row_vector

logger = logging.getLogger(__name__)

# pg-2: collections (qa_collections; a pg-1 database is upgraded in place by the catalog);
# pg-3: BM25 sparse vectors (`bm25` column + HNSW index; a pg-2 collection is upgraded when opened).
SCHEMA_VERSION = "pg-3"
COLLECTIONS_VERSION = "pg-2"  # what the catalog's upgrade of a pg-1 database writes
UPGRADABLE_VERSIONS = ("pg-1",)  # upgraded by the catalog, to COLLECTIONS_VERSION
LEXICAL_UPGRADABLE = ("pg-2",)  # upgraded by `create_schema`, to SCHEMA_VERSION
SENTENCES, PASSAGES = "qa_sentences", "qa_passages"
# Tables searched by keyword over all their rows. Passages are only keyword-scored by id (the
# ranker's few candidate passages, `keyword.EXACT_RESTRICT`), so they keep their `bm25` vectors and
# tsvector without an HNSW or GIN index over them: at a million sentences those two indexes took 5.5
# of the bulk load's minutes, and every row-by-row insert paid for them.
_KEYWORD_SEARCHED = (SENTENCES,)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.qa_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.qa_documents (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, origin TEXT NOT NULL, content_hash TEXT NOT NULL,
    text TEXT NOT NULL, meta JSONB NOT NULL DEFAULT '{{}}', indexed_at DOUBLE PRECISION NOT NULL,
    sentence_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS qa_documents_origin ON {s}.qa_documents (origin);
CREATE INDEX IF NOT EXISTS qa_documents_origin_bytes ON {s}.qa_documents ((origin COLLATE "C"));
CREATE TABLE IF NOT EXISTS {s}.qa_term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS qa_sentences_document ON {s}.qa_sentences ((meta->>'document_id'));
CREATE INDEX IF NOT EXISTS qa_sentences_passage ON {s}.qa_sentences ((meta->>'passage_id'));
CREATE INDEX IF NOT EXISTS qa_passages_document ON {s}.qa_passages ((meta->>'document_id'));
"""


@dataclass(frozen=True)
class Tables:
    """The qualified names of one collection's tables (`public` holds collection `default`)."""

    schema: str

    def _q(self, table: str) -> str:
        return f'"{self.schema}".{table}'

    @property
    def meta(self) -> str:
        return self._q("qa_meta")

    @property
    def documents(self) -> str:
        return self._q("qa_documents")

    @property
    def term_df(self) -> str:
        return self._q("qa_term_df")

    @property
    def sentences(self) -> str:
        return self._q(SENTENCES)

    @property
    def passages(self) -> str:
        return self._q(PASSAGES)


@dataclass(frozen=True)
class IndexIdentity:
    """What a database is indexed with; all of it must match the settings."""

    model: str
    dimension: int
    language: str


def read_meta(conn: Connection[Any], schema: str = "public") -> dict[str, str]:
    tables = Tables(schema)
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (tables.meta,)).fetchone()
    if not exists or not exists[0]:
        return {}
    return {k: v for k, v in conn.execute(f"SELECT key, value FROM {tables.meta}").fetchall()}


def _check(meta: dict[str, str], wanted: IndexIdentity, where: str) -> None:
    found = meta.get("schema_version")
    newer = found is not None and found.startswith("pg-") and found[3:].isdigit()
    if newer and int(str(found)[3:]) > int(SCHEMA_VERSION[3:]):
        raise IndexMismatchError(
            f"The database at {where} holds schema {found!r}, written by a newer qa-service; this "
            f"version reads {SCHEMA_VERSION!r}. Upgrade qa-service."
        )
    if found != SCHEMA_VERSION and found not in LEXICAL_UPGRADABLE:
        raise IndexMismatchError(
            f"The database at {where} holds schema {meta.get('schema_version')!r}; this version "
            f"reads {SCHEMA_VERSION!r}. Use an empty database."
        )
    if meta.get("language", wanted.language) != wanted.language:
        raise IndexMismatchError(
            f"The database at {where} has keyword indexes for {meta.get('language')!r}; the settings ask "
            f"for {wanted.language!r}. Set QA_PGVECTOR_LANGUAGE back or use another database."
        )
    if meta.get("model") != wanted.model or int(meta.get("dimension", 0)) != wanted.dimension:
        raise IndexMismatchError(
            f"The database at {where} was indexed with model {meta.get('model')!r} (dimension "
            f"{meta.get('dimension')}), but the settings ask for {wanted.model!r} (dimension "
            f"{wanted.dimension}). Use another database or set QA_EMBEDDING_MODEL back."
        )


def create_schema(
    conn: Connection[Any],
    stores: tuple[PgvectorDocumentStore, PgvectorDocumentStore],
    wanted: IndexIdentity,
    where: str,
    create: bool,
    schema: str = "public",
) -> None:
    """Check an existing index (of the collection in `schema`) against `wanted`, or create one
    (idempotent; run under the setup lock)."""
    meta = read_meta(conn, schema)
    if not meta and not create:
        raise IndexNotFoundError(f"No index in {where}; run `qa-service index PATH` first.")
    if meta:
        _check(meta, wanted, where)
    quoted = sql.Identifier(schema).as_string(conn)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
    # Ours first where the table is there but its keyword index may not be (a bulk load killed before
    # rebuilding): the integration's setup would otherwise build its own GIN under that name, only for
    # `_keyword_index` to drop it (minutes at a million sentences). New tables get it after the column.
    settled = [table for table in (SENTENCES, PASSAGES) if _has_column(conn, schema, table, "keywords")]
    for table in settled:
        _keyword_index(conn, schema, table)
    for store in stores:  # the integration creates tables and indexes
        store._ensure_db_setup()
        store.close()  # its own connection is only needed again for `filter_documents`
    for statement in filter(None, (s.strip() for s in _SCHEMA.format(s=quoted).split(";"))):
        conn.execute(statement)
    lang = sql.Literal(wanted.language)
    for table in (SENTENCES, PASSAGES):
        name = sql.Identifier(schema, table)
        # Vectors inline in the row: a sentence row with its token blob passes the TOAST threshold,
        # and out-of-line vectors made every exact distance read ~6 pages (11 ms per search on the
        # SQuAD subset, where the planner prefers a scan to the HNSW index).
        conn.execute(sql.SQL("ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE PLAIN").format(table=name))
        # A stored tsvector: ranking reads it instead of parsing every matching row's text again.
        conn.execute(
            sql.SQL(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS keywords tsvector "
                "GENERATED ALWAYS AS (to_tsvector({lang}, coalesce(content, ''))) STORED"
            ).format(table=name, lang=lang)
        )
        if table not in settled:
            _keyword_index(conn, schema, table)
    if meta.get("schema_version") in LEXICAL_UPGRADABLE:
        _upgrade_lexical(conn, schema, str(meta["schema_version"]), where)
    else:
        for table in (SENTENCES, PASSAGES):
            _add_bm25(conn, schema, table)
    if not meta:
        now = str(time.time())
        values = {
            "schema_version": SCHEMA_VERSION,
            "model": wanted.model,
            "dimension": str(wanted.dimension),
            "language": wanted.language,
            **_bm25_meta(),
            "generation": "0",
            "documents": "0",
            "sentences": "0",
            "passages": "0",
            "created_at": now,
            "updated_at": now,
        }
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {Tables(schema).meta}(key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                list(values.items()),
            )


def _has_column(conn: Connection[Any], schema: str, table: str, column: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s AND column_name = %s",
        (schema, table, column),
    ).fetchone()
    return found is not None


def _keyword_index(conn: Connection[Any], schema: str, table: str) -> None:
    """One full-text index on the searched table, none on the other (idempotent; renames what an
    earlier version made).

    The integration creates its own GIN index over `to_tsvector(content)` under its keyword index
    name (`<table>_keyword`) whenever no index of that name exists. We search the stored `keywords`
    column instead, so its index only cost writes (a text parse and a GIN insert per row, 2 minutes
    of a million-sentence bulk load). So `<table>_keyword` is ours: on sentences the GIN index over
    `keywords` (earlier versions named it `<table>_keywords`), on passages, which are keyword-scored
    by id only, an empty placeholder (a partial index no row enters)."""
    table_name = sql.Identifier(schema, table)
    name, earlier = f"{table}_keyword", f"{table}_keywords"
    found = dict(
        conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (schema, table),
        ).fetchall()
    )
    if "to_tsvector" in found.get(name, ""):  # the integration's
        conn.execute(sql.SQL("DROP INDEX {index}").format(index=sql.Identifier(schema, name)))
        found.pop(name)
    if earlier in found:
        if table in _KEYWORD_SEARCHED and name not in found:
            conn.execute(
                sql.SQL("ALTER INDEX {index} RENAME TO {new}").format(
                    index=sql.Identifier(schema, earlier), new=sql.Identifier(name)
                )
            )
        else:
            conn.execute(sql.SQL("DROP INDEX {index}").format(index=sql.Identifier(schema, earlier)))
    if table in _KEYWORD_SEARCHED:
        statement = "CREATE INDEX IF NOT EXISTS {index} ON {table} USING GIN (keywords)"
    else:
        statement = "CREATE INDEX IF NOT EXISTS {index} ON {table} (id) WHERE false"
    conn.execute(sql.SQL(statement).format(index=sql.Identifier(name), table=table_name))


def _bm25_meta() -> dict[str, str]:
    """How the stored BM25 vectors were made (a later version changing any of it must rewrite them)."""
    return {
        "bm25_dimension": str(DIMENSION),
        **{f"bm25_avgdl_{table}": str(length) for table, length in AVGDL.items()},
    }


def _add_bm25(conn: Connection[Any], schema: str, table: str, index: bool = True) -> None:
    """The `bm25` sparse-vector column and, on the table that is keyword-searched, its HNSW
    inner-product index (idempotent)."""
    name = sql.Identifier(schema, table)
    conn.execute(
        sql.SQL("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS bm25 sparsevec({dim})").format(
            table=name, dim=sql.Literal(DIMENSION)
        )
    )
    if table not in _KEYWORD_SEARCHED:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {index}").format(index=sql.Identifier(schema, f"{table}_bm25")))
    elif index:
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw (bm25 sparsevec_ip_ops)").format(
                index=sql.Identifier(f"{table}_bm25"), table=name
            )
        )


def _upgrade_lexical(conn: Connection[Any], schema: str, found: str, where: str) -> None:
    """pg-2 -> pg-3 in one transaction (a crash leaves the pg-2 database whole): every row's BM25
    vector, then the index over them, then the version."""
    logger.info("Upgrading %s (schema %s) from %s to %s: BM25 vectors", where, schema, found, SCHEMA_VERSION)
    with conn.transaction():
        for table in (SENTENCES, PASSAGES):
            _add_bm25(conn, schema, table, index=False)
            name = sql.Identifier(schema, table)
            rows = conn.execute(sql.SQL("SELECT id, content FROM {table}").format(table=name)).fetchall()
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("UPDATE {table} SET bm25 = %s::sparsevec WHERE id = %s").format(table=name),
                    [(row_vector(content or "", table), key) for key, content in rows],
                )
            _add_bm25(conn, schema, table)
        meta = Tables(schema).meta
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {meta}(key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                [*_bm25_meta().items(), ("schema_version", SCHEMA_VERSION)],
            )
