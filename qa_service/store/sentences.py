"""Rows shared by both backends: vectors as bytes, sentence rows as Haystack Documents, Haystack
`write_documents` input grouped into source documents, and the checks made before any write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy

from qa_service.errors import IndexMismatchError, InvalidInputError
from qa_service.ingest.sources import content_hash
from qa_service.store.records import SourceDocument

VECTOR_TYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}


def blob(vector: np.ndarray, storage: str = "float32") -> bytes:
    """A vector's bytes at the width `storage` names (`Settings.vector_storage`)."""
    return np.ascontiguousarray(vector, dtype=VECTOR_TYPES[storage]).tobytes()


def _width(size: int, dimension: int) -> np.dtype:
    for dtype in VECTOR_TYPES.values():
        if size == dtype.itemsize * dimension:
            return dtype
    raise IndexMismatchError(f"A stored vector of {size} bytes is not float32 or float16 of dimension {dimension}.")


def unblob(data: bytes, dimension: int) -> np.ndarray:
    """A stored vector as float32, whichever width wrote it (its length tells: 4 or 2 bytes a component)."""
    return np.frombuffer(data, dtype=_width(len(data), dimension)).astype(np.float32, copy=False)


def unblob_many(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    """(n, dimension) float32 of stored vectors: one read of their concatenation where all share a width."""
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    size = len(blobs[0])
    if any(len(b) != size for b in blobs):
        return np.stack([unblob(b, dimension) for b in blobs])
    matrix = np.frombuffer(b"".join(blobs), dtype=_width(size, dimension)).reshape(len(blobs), dimension)
    return matrix.astype(np.float32, copy=False)


def row_to_document(row: Any, score: float | None = None, dimension: int | None = None) -> Document:
    """A sentence row as a Document; with `dimension`, its stored vector too."""
    meta = {
        "document_id": row["document_id"],
        "source": row["source"],
        "start": row["start"],
        "end": row["end"],
        "sentence_index": row["sentence_index"],
        "passage_id": row["passage_id"],
        "row_id": row["id"],
    }
    embedding = unblob(row["embedding"], dimension).tolist() if dimension else None
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
