"""Read-only SQL of the embedded store: documents by origin, filtered sentences, ids by position.

Each function reads through `Database.query`, so inside a store `snapshot()` it sees the pinned
generation's rows.
"""

from __future__ import annotations

import json
from typing import Any

from haystack import Document

from qa_service.store.embedded.database import Database
from qa_service.store.filters import to_sql
from qa_service.store.records import StoredDocument
from qa_service.store.sentences import row_to_document

_SQL_PARAMS = 300  # scopes a statement, well under SQLite's bound-parameter limit


def documents(db: Database, where: str = "", params: list[str] | tuple[str, ...] = ()) -> list[StoredDocument]:
    """Stored documents (`where` is a SQL clause over `documents`), by source name."""
    sql = f"SELECT id, source, origin, content_hash, indexed_at, sentence_count, meta FROM documents {where}"
    rows = db.query(sql + " ORDER BY source", params)
    return [
        StoredDocument(
            r["id"],
            r["source"],
            r["origin"],
            r["content_hash"],
            r["indexed_at"],
            r["sentence_count"],
            json.loads(r["meta"]),
        )
        for r in rows
    ]


def documents_under(db: Database, scopes: list[str]) -> dict[str, StoredDocument]:
    """Stored documents whose origin is one of `scopes` or lies under one of them, by origin."""
    found: dict[str, StoredDocument] = {}
    for at in range(0, len(scopes), _SQL_PARAMS):
        clauses, params = [], []
        for scope in scopes[at : at + _SQL_PARAMS]:
            under = scope.rstrip("/") + "/"
            clauses.append("(origin = ? OR (origin >= ? AND origin < ?))")  # the origin index's ranges
            params += [scope, under, under[:-1] + "0"]  # "0" is the character after "/"
        found.update((d.origin, d) for d in documents(db, f"WHERE {' OR '.join(clauses)}", params))
    return found


def sentences_of_passages(db: Database, passage_ids: list[int]) -> list[int]:
    if not passage_ids:
        return []
    marks = ",".join("?" * len(passage_ids))
    return [int(r["id"]) for r in db.query(f"SELECT id FROM sentences WHERE passage_id IN ({marks})", passage_ids)]


def sentence_ids_at(db: Database, document_id: str, sentence_index: int) -> list[int]:
    sql = "SELECT id FROM sentences WHERE document_id = ? AND sentence_index = ?"
    return [int(r["id"]) for r in db.query(sql, (document_id, sentence_index))]


def _filtered(columns: str, filters: dict[str, Any] | None, order: str = "") -> tuple[str, list[Any]]:
    where, params = to_sql(filters) if filters is not None else ("1", [])
    return f"SELECT {columns} FROM sentences s JOIN documents d ON d.id = s.document_id WHERE {where} {order}", params


def allowed_sentence_ids(db: Database, filters: dict[str, Any]) -> list[int]:
    return [int(r["id"]) for r in db.query(*_filtered("s.id", filters))]


def filtered_embeddings(db: Database, filters: dict[str, Any]) -> dict[int, bytes]:
    """The stored vector blob of every sentence the filter admits, by id."""
    return {r["id"]: r["embedding"] for r in db.query(*_filtered("s.id, s.embedding", filters))}


def filtered_documents(db: Database, filters: dict[str, Any] | None, dimension: int) -> list[Document]:
    """The sentences the filter admits as Haystack Documents, in document order."""
    columns = 's.id, s.document_id, s.passage_id, s.sentence_index, s.start, s."end", s.text, s.embedding, d.source'
    rows = db.query(*_filtered(columns, filters or None, "ORDER BY s.document_id, s.sentence_index"))
    return [row_to_document(r, dimension=dimension) for r in rows]
