"""Row-level SQL of the store: inserting and deleting documents, and rows <-> Haystack Documents."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import numpy as np
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy

from qa_service.errors import IndexMismatchError, InvalidInputError
from qa_service.ingest.sources import content_hash
from qa_service.store.database import Database
from qa_service.store.records import SourceDocument


def blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def unblob(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32)


def delete_rows(conn: sqlite3.Connection, sentence_ids: list[int], passage_ids: list[int]) -> None:
    texts = [r[0] for i in sentence_ids for r in conn.execute("SELECT text FROM sentences WHERE id = ?", (i,))]
    Database.count_terms(conn, texts, -1)
    conn.executemany("DELETE FROM sentences_fts WHERE rowid = ?", [(i,) for i in sentence_ids])
    conn.executemany("DELETE FROM sentences WHERE id = ?", [(i,) for i in sentence_ids])
    conn.executemany("DELETE FROM passages_fts WHERE rowid = ?", [(i,) for i in passage_ids])


def insert_documents(
    conn: sqlite3.Connection, upserts: list[SourceDocument]
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    s_ids: list[int] = []
    p_ids: list[int] = []
    s_vecs: list[np.ndarray] = []
    p_vecs: list[np.ndarray] = []
    now = time.time()
    for doc in upserts:
        conn.execute(
            "INSERT INTO documents(id, source, origin, content_hash, text, meta, indexed_at, sentence_count) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                doc.id,
                doc.source,
                doc.origin,
                doc.content_hash,
                doc.text,
                json.dumps(doc.meta),
                now,
                len(doc.sentences),
            ),
        )
        passage_rows = []
        for k, (start, end) in enumerate(doc.passages):
            cur = conn.execute(
                'INSERT INTO passages(document_id, passage_index, start, "end", embedding) VALUES (?, ?, ?, ?, ?)',
                (doc.id, k, start, end, blob(doc.passage_embeddings[k])),
            )
            row_id = int(cur.lastrowid or 0)
            passage_rows.append(row_id)
            conn.execute(
                "INSERT INTO passages_fts(rowid, text) VALUES (?, ?)",
                (row_id, f"{doc.source}\n{doc.text[start:end]}"),
            )
        p_ids += passage_rows
        p_vecs.append(doc.passage_embeddings)
        for k, (start, end, passage) in enumerate(doc.sentences):
            text = doc.text[start:end]
            tokens = doc.sentence_tokens[k] if doc.sentence_tokens else b""
            cur = conn.execute(
                'INSERT INTO sentences(document_id, passage_id, sentence_index, start, "end", text, embedding, '
                "tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.id, passage_rows[passage], k, start, end, text, blob(doc.sentence_embeddings[k]), tokens),
            )
            row_id = int(cur.lastrowid or 0)
            s_ids.append(row_id)
            conn.execute("INSERT INTO sentences_fts(rowid, text) VALUES (?, ?)", (row_id, text))
        s_vecs.append(doc.sentence_embeddings)
        Database.count_terms(conn, [doc.text[a:b] for a, b, _ in doc.sentences], +1)
    return stack(s_ids, s_vecs), stack(p_ids, p_vecs)


def row_to_document(row: Any, score: float | None = None, with_embedding: bool = False) -> Document:
    meta = {
        "document_id": row["document_id"],
        "source": row["source"],
        "start": row["start"],
        "end": row["end"],
        "sentence_index": row["sentence_index"],
        "passage_id": row["passage_id"],
        "row_id": row["id"],
    }
    embedding = unblob(row["embedding"]).tolist() if with_embedding else None
    return Document(
        id=f"{row['document_id']}:s{row['sentence_index']}",
        content=row["text"],
        meta=meta,
        score=score,
        embedding=embedding,
    )


def stack(ids: list[int], vectors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 1), dtype=np.float32)
    return np.array(ids, dtype=np.int64), matrix


def source_from_sentences(doc_id: str, docs: list[Document]) -> SourceDocument:
    text, pos = "", 0
    spans: list[tuple[int, int, int]] = []
    for doc in docs:
        content = doc.content or ""
        spans.append((pos, pos + len(content), len(spans)))
        text += content + "\n"
        pos = len(text)
    vectors = np.array([d.embedding for d in docs], dtype=np.float32)
    return SourceDocument(
        id=doc_id,
        source=str(docs[0].meta.get("source", doc_id)),
        origin=f"haystack:{doc_id}",
        text=text,
        content_hash=content_hash(text),
        sentences=spans,
        sentence_embeddings=vectors,
        passages=[(s, e) for s, e, _ in spans],
        passage_embeddings=vectors,
    )


def upserts_from_sentences(
    documents: list[Document], policy: DuplicatePolicy, existing: set[str]
) -> list[SourceDocument]:
    """Haystack `write_documents` for both stores: embedded sentence Documents sharing
    `meta["document_id"]` form one source document (joined by newlines); `policy` applies per source
    document against the `existing` document ids."""
    groups: dict[str, list[Document]] = {}
    for doc in documents:
        if doc.embedding is None or not doc.content:
            raise InvalidInputError(f"Document {doc.id!r} needs content and an embedding.")
        groups.setdefault(str(doc.meta.get("document_id", doc.id)), []).append(doc)
    upserts = []
    for doc_id, docs in groups.items():
        if doc_id in existing and policy in (DuplicatePolicy.NONE, DuplicatePolicy.FAIL):
            raise DuplicateDocumentError(f"Document {doc_id!r} already exists.")
        if doc_id in existing and policy == DuplicatePolicy.SKIP:
            continue
        upserts.append(source_from_sentences(doc_id, docs))
    return upserts


def validate_source(doc: SourceDocument, dimension: int) -> None:
    """Offsets inside the text and one vector of the index's width per sentence and passage."""
    for start, end, _ in doc.sentences:
        if not (0 <= start < end <= len(doc.text)):
            raise InvalidInputError(f"Sentence offsets ({start}, {end}) out of range in {doc.source!r}.")
    for matrix, n in ((doc.sentence_embeddings, len(doc.sentences)), (doc.passage_embeddings, len(doc.passages))):
        if matrix.shape != (n, dimension):
            raise IndexMismatchError(
                f"Embeddings of shape {matrix.shape} for {doc.source!r}; the index expects dimension {dimension}."
            )
