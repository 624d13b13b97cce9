"""Embedding components over the shared encoder (one model instance per process)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.encoders import Encoder, get_encoder


def embedding_text(doc: Document) -> str:
    """Sentences and passages are embedded with their document title as context."""
    title = doc.meta.get("title")
    return f"{title}: {doc.content}" if title else (doc.content or "")


@component
class DocumentEmbedder:
    """Embeds documents (`title: content`) into `Document.embedding`."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        self._encoder: Encoder | None = None

    def warm_up(self) -> None:
        if self._encoder is None:
            self._encoder = get_encoder(self.model, self.device)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        self.warm_up()
        assert self._encoder is not None
        vectors = self._encoder.embed([embedding_text(d) for d in documents], batch_size=self.batch_size)
        return {
            "documents": [
                replace(doc, embedding=vector.tolist()) for doc, vector in zip(documents, vectors, strict=True)
            ]
        }

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, model=self.model, device=self.device, batch_size=self.batch_size)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentEmbedder:
        return default_from_dict(cls, data)


@component
class QueryEmbedder:
    """Embeds the query once: pooled vector for retrieval, token vectors for late interaction.

    `embedding` is the usual Haystack list; `vector` is the same as a numpy array, which our own
    components take because Haystack copies component inputs element by element.
    """

    def __init__(self, model: str, device: str = "cpu") -> None:
        self.model, self.device = model, device
        self._encoder: Encoder | None = None

    def warm_up(self) -> None:
        if self._encoder is None:
            self._encoder = get_encoder(self.model, self.device)

    @component.output_types(embedding=list[float], vector=np.ndarray, tokens=np.ndarray)
    def run(self, text: str) -> dict[str, Any]:
        self.warm_up()
        assert self._encoder is not None
        tokens, pooled = self._encoder.embed_tokens([text])[0]
        return {"embedding": pooled.tolist(), "vector": pooled, "tokens": tokens}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, model=self.model, device=self.device)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryEmbedder:
        return default_from_dict(cls, data)
