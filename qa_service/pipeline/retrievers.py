"""Candidate retrievers over FaissSQLiteDocumentStore: dense sentences, BM25 sentences, dense passages."""

from __future__ import annotations

from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.store.document_store import FaissSQLiteDocumentStore
from qa_service.store.rows import row_to_document


class _StoreComponent:
    def __init__(self, document_store: FaissSQLiteDocumentStore, top_k: int) -> None:
        self.document_store, self.top_k = document_store, top_k

    def _documents(self, hits: list[tuple[int, float]]) -> list[Document]:
        rows = {row["id"]: row for row in self.document_store.sentence_rows([i for i, _ in hits], vectors=False)}
        return [row_to_document(rows[i], score=s) for i, s in hits if i in rows]

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store.to_dict(), top_k=self.top_k)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        params = data["init_parameters"]
        params["document_store"] = FaissSQLiteDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, data)


@component
class DenseSentenceRetriever(_StoreComponent):
    """Nearest sentences by cosine similarity (FAISS; exact pre-filtered search when filters are given)."""

    @component.output_types(documents=list[Document])
    def run(
        self, query_vector: np.ndarray, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        query = np.asarray(query_vector, dtype=np.float32)
        hits = self.document_store.dense_sentences(query, top_k or self.top_k, filters)
        return {"documents": self._documents(hits)}


@component
class KeywordSentenceRetriever(_StoreComponent):
    """BM25 (SQLite FTS5, Porter stemming) over sentences."""

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        restrict = self.document_store.allowed_sentence_ids(filters) if filters else None
        hits = self.document_store.keyword_sentences(query, top_k or self.top_k, restrict)
        return {"documents": self._documents(hits)}


@component
class PassageSentenceRetriever(_StoreComponent):
    """Passage-then-sentence: every sentence of the `top_k` passages nearest to the query."""

    @component.output_types(documents=list[Document])
    def run(self, query_vector: np.ndarray, filters: dict[str, Any] | None = None) -> dict[str, list[Document]]:
        if self.top_k <= 0:
            return {"documents": []}
        query = np.asarray(query_vector, dtype=np.float32)
        passages = self.document_store.dense_passages(query, self.top_k)
        if not passages:
            return {"documents": []}
        marks = ",".join("?" * len(passages))
        sql = f"SELECT s.id FROM sentences s WHERE s.passage_id IN ({marks})"
        ids = [int(r["id"]) for r in self.document_store.db.query(sql, [p for p, _ in passages])]
        if filters:
            allowed = set(self.document_store.allowed_sentence_ids(filters))
            ids = [i for i in ids if i in allowed]
        return {"documents": self._documents([(i, 0.0) for i in ids])}
