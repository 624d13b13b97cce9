"""Embedding components over the shared encoder (one model instance per process)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.codebooks import resolve
from qa_service.embed_batching import EmbedBatcher, Reservation, batcher_for
from qa_service.encoders import Encoder, get_encoder
from qa_service.quantize import INT8, Codec, token_blob


def embedding_text(doc: Document) -> str:
    """Sentences and passages are embedded with their document title as context."""
    title = doc.meta.get("title")
    return f"{title}: {doc.content}" if title else (doc.content or "")


def title_prefix(doc: Document) -> str:
    title = doc.meta.get("title")
    return f"{title}:" if title else ""


class _EncoderComponent:
    """What both embedders share: the encoder they describe, loaded by `warm_up`, and its parameters
    in `to_dict`."""

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        backend: str = "torch",
        cache_dir: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.model, self.device = model, device
        self.backend, self.cache_dir, self.threads = backend, cache_dir, threads
        self._encoder: Encoder | None = None

    def warm_up(self) -> None:
        if self._encoder is None:
            self._encoder = get_encoder(self.model, self.device, self.backend, self.cache_dir, self.threads)

    def _encoder_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "device": self.device,
            "backend": self.backend,
            "cache_dir": self.cache_dir,
            "threads": self.threads,
        }


@component
class SentenceEmbedder(_EncoderComponent):
    """Embeds each sentence once, as `title: sentence`.

    One forward pass gives the pooled vector (dense retrieval) and the token vectors. Pooled vectors
    come out as one float32 matrix, `embeddings` (row i is `documents[i]`'s), not as per-document
    lists of Python floats: those take 12 KiB per sentence, which bulk indexing cannot afford. The
    sentence's own tokens (title tokens dropped) come out as `tokens`,
    aligned with `documents` as blobs in `token_code` (`qa_service.quantize`: int4, int8, or
    product-quantised with the model's shipped codebook), for late interaction and the sentence-only
    vector at query time.
    """

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        batch_size: int = 64,
        backend: str = "torch",
        cache_dir: str | None = None,
        threads: int | None = None,
        token_code: str = INT8,
    ) -> None:
        # Not super(): @component rebuilds the class, which breaks zero-argument super().
        _EncoderComponent.__init__(self, model, device, backend, cache_dir, threads)
        self.batch_size = batch_size
        self.token_code = token_code
        self._codec: Codec | None = None
        self._resolved = token_code == INT8

    def warm_up(self) -> None:
        _EncoderComponent.warm_up(self)
        if not self._resolved:  # once: a model whose tokens the code cannot store logs its int8 fallback once
            assert self._encoder is not None
            self._codec, self._resolved = resolve(self.token_code, self.model, self._encoder.dimension), True

    @component.output_types(documents=list[Document], embeddings=np.ndarray, tokens=list[bytes])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        self.warm_up()
        assert self._encoder is not None
        prefixes = sorted({title_prefix(d) for d in documents} - {""})
        prefix_tokens = dict(zip(prefixes, self._encoder.token_counts(prefixes), strict=True))
        out_tokens: list[bytes] = []
        vectors = np.zeros((len(documents), self._encoder.dimension), dtype=np.float32)
        # Chunks bound the float32 token vectors alive at once (about 25 KiB per sentence).
        chunk = max(self.batch_size, 1024)
        for at in range(0, len(documents), chunk):
            part = documents[at : at + chunk]
            encoded = self._encoder.embed_tokens([embedding_text(d) for d in part], self.batch_size)
            own = []
            for i, (doc, (tokens, pooled)) in enumerate(zip(part, encoded, strict=True), start=at):
                skip = prefix_tokens.get(title_prefix(doc), 0)
                vectors[i] = pooled
                own.append(tokens[skip:] if len(tokens) > skip else tokens)
            out_tokens.extend(self._codec.encode_many(own) if self._codec else [token_blob(t) for t in own])
        return {"documents": documents, "embeddings": vectors, "tokens": out_tokens}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, batch_size=self.batch_size, token_code=self.token_code, **self._encoder_params())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentenceEmbedder:
        return default_from_dict(cls, data)


@component
class QueryEmbedder(_EncoderComponent):
    """Embeds the query once: pooled vector for retrieval, token vectors for late interaction.

    `embedding` is the usual Haystack list; `vector` is the same as a numpy array, which our own
    components take because Haystack copies component inputs element by element.

    `batch_window_ms` > 0: questions embedded concurrently (answers run in a thread pool) within that
    window share one forward pass (`qa_service.embed_batching`); 0: each question alone. A question
    `reserved` before its answer queues for a slot may be embedded by the pass of an answer ahead of it;
    `run(text, reservation)` then returns those vectors.
    """

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        backend: str = "torch",
        cache_dir: str | None = None,
        threads: int | None = None,
        batch_window_ms: float = 0.0,
    ) -> None:
        _EncoderComponent.__init__(self, model, device, backend, cache_dir, threads)
        self.batch_window_ms = batch_window_ms
        self._batcher: EmbedBatcher | None = None

    def warm_up(self) -> None:
        _EncoderComponent.warm_up(self)
        if self._batcher is None and self.batch_window_ms > 0 and self._encoder is not None:
            self._batcher = batcher_for(self._encoder, self.batch_window_ms)

    @contextmanager
    def reserved(self, text: str) -> Iterator[Reservation | None]:
        """A reservation for `text` (None with batching off), withdrawn on leaving."""
        self.warm_up()
        if self._batcher is None:
            yield None
            return
        reservation = self._batcher.reserve(text)
        try:
            yield reservation
        finally:
            self._batcher.withdraw(reservation)

    @component.output_types(embedding=list[float], vector=np.ndarray, tokens=np.ndarray)
    def run(self, text: str, reservation: Reservation | None = None) -> dict[str, Any]:
        self.warm_up()
        assert self._encoder is not None
        if self._batcher is not None:
            tokens, pooled = self._batcher.embed(text, reservation)
        else:
            tokens, pooled = self._encoder.embed_tokens([text])[0]
        return {"embedding": pooled.tolist(), "vector": pooled, "tokens": tokens}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, batch_window_ms=self.batch_window_ms, **self._encoder_params())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryEmbedder:
        return default_from_dict(cls, data)
