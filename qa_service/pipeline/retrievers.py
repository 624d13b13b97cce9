"""Candidate retrievers over a sentence store (either backend): dense sentences, keyword sentences,
sentences of the nearest passages."""

from __future__ import annotations

from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.store.protocol import Hit, SentenceStore, store_from_dict
from qa_service.store.sentences import row_to_document


class _StoreComponent:
    """`ids_only`: the component's one output is `row_ids` (its hits' sentence row ids, best first)
    instead of `documents`, for a ranker that reads the rows itself (`SentenceRanker`, in the service's
    pipeline, behind a `RowIdJoiner`). Reading and wrapping each candidate's row twice cost about 5 % of
    an answer's CPU, and wrapping bare ids in Haystack `Document`s (about 60 an answer) 3 % more."""

    def __init__(self, document_store: SentenceStore, top_k: int, ids_only: bool = False) -> None:
        self.document_store, self.top_k, self.ids_only = document_store, top_k, ids_only
        if ids_only:
            component.set_output_types(self, row_ids=list[int])
        else:
            component.set_output_types(self, documents=list[Document])

    def _output(self, hits: list[Hit]) -> dict[str, Any]:
        if self.ids_only:
            return {"row_ids": [i for i, _ in hits]}
        rows = {row["id"]: row for row in self.document_store.sentence_rows([i for i, _ in hits], vectors=False)}
        return {"documents": [row_to_document(rows[i], score=s) for i, s in hits if i in rows]}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, document_store=self.document_store.to_dict(), top_k=self.top_k, ids_only=self.ids_only
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        params = data["init_parameters"]
        params["document_store"] = store_from_dict(params["document_store"])
        return default_from_dict(cls, data)


@component
class DenseSentenceRetriever(_StoreComponent):
    """Nearest sentences by cosine similarity (FAISS or pgvector HNSW; filters apply before ranking)."""

    def run(
        self, query_vector: np.ndarray, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        query = np.asarray(query_vector, dtype=np.float32)
        return self._output(self.document_store.dense_sentences(query, top_k or self.top_k, filters))


@component
class KeywordSentenceRetriever(_StoreComponent):
    """Keyword search over sentences (SQLite FTS5 BM25, or PostgreSQL full text)."""

    def run(self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None) -> dict[str, Any]:
        restrict = self.document_store.allowed_sentence_ids(filters) if filters else None
        return self._output(self.document_store.keyword_sentences(query, top_k or self.top_k, restrict))


@component
class PassageSentenceRetriever(_StoreComponent):
    """Passage-then-sentence: every sentence of the `top_k` passages nearest to the query."""

    def run(self, query_vector: np.ndarray, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.top_k <= 0:
            return self._output([])
        query = np.asarray(query_vector, dtype=np.float32)
        passages = self.document_store.dense_passages(query, self.top_k)
        if not passages:
            return self._output([])
        ids = self.document_store.sentences_of_passages([p for p, _ in passages])
        if filters:
            allowed = set(self.document_store.allowed_sentence_ids(filters))
            ids = [i for i in ids if i in allowed]
        return self._output([(i, 0.0) for i in ids])
