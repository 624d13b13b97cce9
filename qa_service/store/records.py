"""Plain records passed between the ingest side and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SourceDocument:
    """One source file, segmented and embedded, ready to be written in one transaction."""

    id: str
    source: str
    origin: str
    text: str
    content_hash: str
    sentences: list[tuple[int, int, int]]  # (start, end, passage_index)
    sentence_embeddings: np.ndarray
    passages: list[tuple[int, int]]  # (start, end), position = passage_index
    passage_embeddings: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    sentence_tokens: list[bytes] = field(default_factory=list)  # per sentence: `token_blob` of its tokens


@dataclass(frozen=True)
class StoredDocument:
    id: str
    source: str
    origin: str
    content_hash: str
    indexed_at: float
    sentence_count: int
    meta: dict[str, Any]


@dataclass(frozen=True)
class ApplyResult:
    generation: int
    written: list[str]
    deleted: list[str]


@dataclass(frozen=True)
class Collection:
    """A named set of documents with its own physical store (see `qa_service.store.collections`)."""

    id: str  # stable, never reused; "default" for the default collection
    name: str  # 1-64 characters of [a-z0-9-]
    public: bool  # anonymous askers may ask only public collections
    created_at: float
