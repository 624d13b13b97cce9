"""Row-level writes of the PostgreSQL backend: documents, their passages and sentences as rows of the
pgvector-haystack tables, and term frequencies."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from psycopg import Connection
from psycopg.types.json import Jsonb

from qa_service.lexical import content_terms
from qa_service.store.postgres.bm25 import row_vector
from qa_service.store.records import SourceDocument

TOKENS_MIME = "application/x-qa-int8-tokens"
# The integration's insert statement plus our `bm25` column (the rows it would write, and their BM25
# vector in the same statement: a later UPDATE would add a second version of every row to each index).
_INSERT = (
    "INSERT INTO {table} (id, embedding, content, blob_data, blob_meta, blob_mime_type, meta, bm25) "
    "VALUES (%(id)s, %(embedding)s, %(content)s, %(blob_data)s, %(blob_meta)s, %(blob_mime_type)s, %(meta)s, "
    "%(bm25)s::sparsevec)"
)


def sentence_key(document_id: str, k: int) -> str:
    return f"{document_id}:s{k}"


def passage_key(document_id: str, k: int) -> str:
    return f"{document_id}:p{k}"


def as_vector(value: Any) -> np.ndarray:
    """pgvector's `Vector` (or an array) as float32."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def _row(
    table: str, key: str, content: str, vector: np.ndarray, meta: dict[str, Any], blob: bytes | None = None
) -> dict[str, Any]:
    """One row of a PgvectorDocumentStore table, as its insert statement takes it: what the
    integration's converter makes of a Document, without a Python float list per vector (that
    conversion took 90% of the indexing time)."""
    return {
        "bm25": row_vector(content, table),
        "id": key,
        "embedding": np.ascontiguousarray(vector, dtype=np.float32),
        "content": content.replace("\x00", ""),
        "blob_data": blob or None,
        "blob_meta": None,
        "blob_mime_type": TOKENS_MIME if blob else None,
        "meta": Jsonb(meta),
    }


def insert_documents(
    conn: Connection[Any],
    upserts: list[SourceDocument],
    now: float,
    sentences_table: str,
    passages_table: str,
    documents_table: str,
) -> None:
    """Insert documents (none may exist: the caller deleted them in the same transaction)."""
    if not upserts:
        return
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {documents_table}(id, source, origin, content_hash, text, meta, indexed_at, sentence_count) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    d.id,
                    d.source,
                    d.origin,
                    d.content_hash,
                    d.text.replace("\x00", ""),
                    json.dumps(d.meta),
                    now,
                    len(d.sentences),
                )
                for d in upserts
            ],
        )
    passages: list[dict[str, Any]] = []
    sentences: list[dict[str, Any]] = []
    for doc in upserts:
        for k, (start, end) in enumerate(doc.passages):
            meta = {"document_id": doc.id, "passage_index": k, "start": start, "end": end}
            text = f"{doc.source}\n{doc.text[start:end]}"
            passages.append(_row("qa_passages", passage_key(doc.id, k), text, doc.passage_embeddings[k], meta))
        for k, (start, end, passage) in enumerate(doc.sentences):
            meta = {
                **{k: v for k, v in doc.meta.items() if k != "locations"},  # per document, not per sentence
                "document_id": doc.id,
                "source": doc.source,
                "start": start,
                "end": end,
                "sentence_index": k,
                "passage_id": passage_key(doc.id, passage),
                "indexed_at": now,
            }
            tokens = doc.sentence_tokens[k] if doc.sentence_tokens else None
            sentences.append(
                _row(
                    "qa_sentences",
                    sentence_key(doc.id, k),
                    doc.text[start:end],
                    doc.sentence_embeddings[k],
                    meta,
                    tokens,
                )
            )
    for table, rows in ((passages_table, passages), (sentences_table, sentences)):
        if rows:
            with conn.cursor() as cur:
                cur.executemany(_INSERT.format(table=table), rows)


def count_terms(conn: Connection[Any], removed: list[str], added: list[str], table: str = "qa_term_df") -> None:
    """Keep sentence frequencies of content terms (IDF of the coverage evidence); sorted upserts, so
    concurrent writers never deadlock on them."""
    counts: dict[str, int] = {}
    for texts, delta in ((removed, -1), (added, 1)):
        for text in texts:
            for term in content_terms(text):
                counts[term] = counts.get(term, 0) + delta
    changes = sorted((t, d) for t, d in counts.items() if d)
    if not changes:
        return
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {table}(term, df) VALUES (%s, %s) "
            "ON CONFLICT (term) DO UPDATE SET df = qa_term_df.df + EXCLUDED.df",
            changes,
        )
    if removed:
        conn.execute(f"DELETE FROM {table} WHERE term = ANY(%s) AND df <= 0", ([t for t, _ in changes],))
