"""Row-level SQL of the embedded store: inserting and deleting documents and their term rows, and the
texts the keyword index (`lexical`) holds for them."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

import numpy as np

from qa_service.store.embedded.database import Database
from qa_service.store.records import SourceDocument
from qa_service.store.sentences import blob, stack


def delete_rows(conn: sqlite3.Connection, sentence_ids: list[int], passage_ids: list[int]) -> None:
    texts = [r[0] for i in sentence_ids for r in conn.execute("SELECT text FROM sentences WHERE id = ?", (i,))]
    Database.count_terms(conn, texts, -1)
    conn.executemany("DELETE FROM sentences WHERE id = ?", [(i,) for i in sentence_ids])


def insert_documents(
    conn: sqlite3.Connection, upserts: list[SourceDocument], storage: str = "float32"
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
                (doc.id, k, start, end, blob(doc.passage_embeddings[k], storage)),
            )
            row_id = int(cur.lastrowid or 0)
            passage_rows.append(row_id)
        p_ids += passage_rows
        p_vecs.append(doc.passage_embeddings)
        for k, (start, end, passage) in enumerate(doc.sentences):
            text = doc.text[start:end]
            tokens = doc.sentence_tokens[k] if doc.sentence_tokens else b""
            cur = conn.execute(
                'INSERT INTO sentences(document_id, passage_id, sentence_index, start, "end", text, embedding, '
                "tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.id, passage_rows[passage], k, start, end, text, blob(doc.sentence_embeddings[k], storage), tokens),
            )
            row_id = int(cur.lastrowid or 0)
            s_ids.append(row_id)
        s_vecs.append(doc.sentence_embeddings)
        Database.count_terms(conn, [doc.text[a:b] for a, b, _ in doc.sentences], +1)
    return stack(s_ids, s_vecs), stack(p_ids, p_vecs)


def keyword_texts(upserts: list[SourceDocument]) -> tuple[list[str], list[str]]:
    """What the keyword index holds for the rows `insert_documents` adds, in its id order: each
    sentence's text, and each passage's text under its document's source name."""
    sentences = [doc.text[a:b] for doc in upserts for a, b, _ in doc.sentences]
    passages = [f"{doc.source}\n{doc.text[a:b]}" for doc in upserts for a, b in doc.passages]
    return sentences, passages


def keyword_rows(conn: sqlite3.Connection) -> tuple[Iterator[tuple[int, str]], Iterator[tuple[int, str]]]:
    """(row id, keyword text) of every stored sentence and passage, as `keyword_texts` makes them."""
    sentences = ((int(r[0]), str(r[1])) for r in conn.execute("SELECT id, text FROM sentences ORDER BY id"))
    passages = (
        (int(r[0]), str(r[1]))
        for r in conn.execute(
            'SELECT p.id, d.source || char(10) || substr(d.text, p.start + 1, p."end" - p.start) '
            "FROM passages p JOIN documents d ON d.id = p.document_id ORDER BY p.id"
        )
    )
    return sentences, passages


def drop_fts(conn: sqlite3.Connection) -> None:
    """Drop the SQLite FTS5 tables of schema 3 (keyword search is tantivy's since schema 4)."""
    for table in ("sentences_fts", "passages_fts"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
