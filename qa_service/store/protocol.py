"""What the pipelines, the indexer and the service need from a sentence store (both backends).

`FaissSQLiteDocumentStore` (embedded, one machine: `store/embedded/`) and `PgvectorSentenceStore`
(PostgreSQL, any number of replicas: `store/postgres/`) implement it; a `CollectionCatalog` holds one
such store per collection; `tests/store/test_contract.py` runs the same tests on both.
Row ids are opaque: integers in the embedded store, `<document_id>:s<k>` strings in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
from haystack import Document
from haystack.document_stores.types import DuplicatePolicy

from qa_service.store.manifest import Manifest
from qa_service.store.records import ApplyResult, Collection, SourceDocument, StoredDocument

RowId = Any  # int (embedded) or str (PostgreSQL)
Hit = tuple[RowId, float]


class SentenceStore(Protocol):
    model: str
    dimension: int

    # state
    @property
    def generation(self) -> int: ...
    @property
    def sentence_count(self) -> int: ...
    @property
    def token_code(self) -> str: ...  # '' while the store holds no sentence
    def counts(self) -> tuple[int, int, int]: ...
    def manifest(self) -> Manifest: ...
    def snapshot(self) -> AbstractContextManager[Any]: ...
    def close(self) -> None: ...

    # writing
    def apply(
        self,
        upserts: list[SourceDocument],
        deletes: list[str],
        sentence_deletes: list[RowId] | None = None,
        rebuild: bool = False,
    ) -> ApplyResult: ...
    def bulk_load(self, chars: int) -> AbstractContextManager[None]: ...  # writes of `chars` characters follow

    # search
    def dense_sentences(self, query: np.ndarray, k: int, filters: dict[str, Any] | None = None) -> list[Hit]: ...
    def dense_passages(self, query: np.ndarray, k: int) -> list[Hit]: ...
    def allowed_sentence_ids(self, filters: dict[str, Any]) -> list[RowId]: ...
    def keyword_sentences(self, text: str, k: int, restrict: list[RowId] | None = None) -> list[Hit]: ...
    def keyword_passages(self, text: str, k: int, restrict: list[RowId] | None = None) -> list[Hit]: ...

    # rows
    def sentence_rows(self, ids: list[RowId], vectors: bool = True) -> Sequence[Any]: ...
    def sentences_of_passages(self, passage_ids: list[RowId]) -> list[RowId]: ...
    def passage_vectors(self, ids: list[RowId]) -> dict[RowId, np.ndarray]: ...
    def term_frequencies(self, terms: list[str]) -> dict[str, int]: ...

    # documents
    def documents_under(self, scopes: list[str]) -> dict[str, StoredDocument]: ...
    def list_documents(self, document_id: str | None = None) -> list[StoredDocument]: ...
    def has_sentence(self, document_id: str, start: int, end: int) -> bool: ...
    def document_text(self, document_id: str) -> str | None: ...

    # Haystack DocumentStore protocol
    def count_documents(self) -> int: ...
    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]: ...
    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int: ...
    def delete_documents(self, document_ids: list[str]) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...


class CollectionCatalog(Protocol):
    """The collections of one index (`EmbeddedCatalog`, `PostgresCatalog`): each is its own
    `SentenceStore` with its own physical storage, so nothing of one collection is read for another."""

    def list(self) -> list[Collection]: ...
    def get(self, name: str) -> Collection: ...  # CollectionNotFoundError
    def create(self, name: str, public: bool = False) -> Collection: ...  # CollectionExistsError, InvalidInputError
    def update(self, name: str, new_name: str | None = None, public: bool | None = None) -> Collection: ...
    def delete(self, name: str) -> Collection: ...  # with its documents; returns what was deleted
    def store(self, name: str) -> SentenceStore: ...  # opened lazily, cached, closed on delete
    def store_by_id(self, collection_id: str) -> SentenceStore: ...
    def close(self) -> None: ...


def store_from_dict(data: dict[str, Any]) -> SentenceStore:
    """Deserialise either backend from its `to_dict` (the `type` names the class)."""
    from haystack.core.serialization import import_class_by_name

    cls = import_class_by_name(data["type"])
    store: SentenceStore = cls.from_dict(data)  # type: ignore[attr-defined]
    return store
