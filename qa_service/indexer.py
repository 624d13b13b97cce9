"""Indexing: turn files and texts into embedded sentences and passages, committed in atomic batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from haystack import Document

from qa_service.errors import DocumentParseError, InvalidInputError
from qa_service.ingest.converters import convert_path
from qa_service.ingest.locations import location_meta
from qa_service.ingest.sources import content_hash, discover, title_from_source
from qa_service.memory import release_freed_memory
from qa_service.pipeline.runner import GraphRunner
from qa_service.store.collections import DEFAULT, collection_document_id
from qa_service.store.protocol import SentenceStore
from qa_service.store.records import SourceDocument
from qa_service.store.token_codes import transcode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextSource:
    """A document given as text: `origin` identifies it for re-index sync (defaults to its source)."""

    source: str
    text: str
    origin: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    sentences: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Indexer:
    """Syncs the store with files or texts; every batch of `batch_chars` of text is one generation."""

    def __init__(
        self, store: SentenceStore, pipeline: GraphRunner, batch_chars: int = 2_000_000, collection_id: str = DEFAULT
    ) -> None:
        self.store, self._pipeline, self.batch_chars = store, pipeline, batch_chars
        self.collection_id = collection_id

    def document_id(self, origin: str) -> str:
        """The id of the document of `origin` in this indexer's collection."""
        return collection_document_id(self.collection_id, origin)

    def index_paths(
        self,
        paths: Iterable[Path],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> IndexReport:
        """Sync the index with the files under `paths`: new and changed files are (re)indexed, unchanged
        ones skipped by content hash, and documents whose file disappeared from those paths removed."""
        started = time.perf_counter()
        files, scopes = discover(paths)
        existing = self.store.documents_under(scopes)
        report = IndexReport()
        todo = []
        size = 0  # bytes of the files to index: they stand for the text to come (bulk loads are decided first)
        for f in files:
            raw = f.path.read_bytes()
            raw_hash = content_hash(raw)
            known = existing.get(f.origin)
            if known is not None and known.content_hash == raw_hash and known.source == f.source:
                report.unchanged += 1
            else:
                todo.append((f, raw_hash, known is not None))
                size += len(raw)
        seen = {f.origin for f in files}
        removed = [doc.id for origin, doc in existing.items() if origin not in seen]
        report.removed = len(removed)

        def converted() -> Iterator[tuple[SourceDocument, bool]]:
            for f, raw_hash, is_update in todo:
                try:
                    converted = convert_path(f.path)
                except DocumentParseError as exc:
                    logger.warning("Skipping %s: %s", f.source, exc)
                    report.failed.append(f"{f.source}: {exc}")
                    continue
                meta = location_meta(converted)
                yield (
                    self._unembedded(self.document_id(f.origin), f.source, f.origin, converted.text, raw_hash, meta),
                    is_update,
                )

        self._write(converted(), removed, report, len(todo), on_progress, size)
        report.seconds = time.perf_counter() - started
        return report

    def index_texts(
        self,
        sources: list[TextSource],
        prune_origin_prefix: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> IndexReport:
        """Index documents given as text (API uploads, evaluation corpora)."""
        started = time.perf_counter()
        report = IndexReport()
        if prune_origin_prefix is None:  # look up only these origins (not every document of a large index)
            origins = list(dict.fromkeys(item.origin or item.source for item in sources))
            wanted = set(origins)  # documents_under also returns documents under an origin as a folder
            known = {o: d for o, d in self.store.documents_under(origins).items() if o in wanted}
        else:
            known = {d.origin: d for d in self.store.list_documents()}
        todo = []
        for item in sources:
            origin = item.origin or item.source
            digest = content_hash(item.text)
            if origin in known and known[origin].content_hash == digest:
                report.unchanged += 1
                continue
            todo.append(
                (
                    self._unembedded(self.document_id(origin), item.source, origin, item.text, digest, item.meta),
                    origin in known,
                )
            )
        removed = []
        if prune_origin_prefix is not None:
            wanted = {s.origin or s.source for s in sources}
            removed = [d.id for o, d in known.items() if o.startswith(prune_origin_prefix) and o not in wanted]
        report.removed = len(removed)
        self._write(iter(todo), removed, report, len(todo), on_progress, sum(len(d.text) for d, _ in todo))
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _unembedded(
        doc_id: str, source: str, origin: str, text: str, digest: str, meta: dict[str, Any]
    ) -> SourceDocument:
        if not text.strip():
            raise InvalidInputError(f"Document {source!r} has no text.")
        empty = np.zeros((0, 0), dtype=np.float32)
        return SourceDocument(doc_id, source, origin, text, digest, [], empty, [], empty, dict(meta))

    def _write(
        self,
        docs: Iterator[tuple[SourceDocument, bool]],
        removed: list[str],
        report: IndexReport,
        total: int,
        on_progress: Callable[[int, int], None] | None,
        expected_chars: int,
    ) -> None:
        """Embed and commit in batches; every batch is one atomic generation of the index. The whole
        run is one `bulk_load` of the store (PostgreSQL may build its search indexes after the rows)."""
        batch: list[tuple[SourceDocument, bool]] = []
        chars = done = 0
        pending_deletes = list(removed)

        def flush() -> None:
            nonlocal batch, chars, done, pending_deletes
            if not batch and not pending_deletes:
                return
            embedded = self._embed([d for d, _ in batch])
            self.store.apply(embedded, pending_deletes)
            for _, is_update in batch:
                report.updated += is_update
                report.added += not is_update
            report.sentences += sum(len(d.sentences) for d in embedded)
            done += len(batch)
            if on_progress:
                on_progress(done, total)
            batch, chars, pending_deletes = [], 0, []
            del embedded
            release_freed_memory()  # the batch's fragments would otherwise stay resident

        with self.store.bulk_load(expected_chars):
            for doc, is_update in docs:
                batch.append((doc, is_update))
                chars += len(doc.text)
                if chars >= self.batch_chars:
                    flush()
            flush()

    def _embed(self, docs: list[SourceDocument]) -> list[SourceDocument]:
        if not docs:
            return []
        inputs = [
            Document(
                id=d.id,
                content=d.text,
                meta={
                    "document_id": d.id,
                    "source": d.source,
                    "title": d.meta.get("title") or title_from_source(d.source),
                },
            )
            for d in docs
        ]
        out = self._pipeline.run({"splitter": {"documents": inputs}})
        embedded = out["sentence_embedder"]
        # In the store's own code: an index keeps one code (an int8 index keeps taking documents).
        target = getattr(self.store, "token_code", "")
        blobs = transcode(embedded["tokens"], target, embedded["embeddings"].shape[1]) if target else embedded["tokens"]
        sentences: dict[str, list[tuple[Document, np.ndarray, bytes]]] = {}
        passages: dict[str, list[Document]] = {}
        for s, vector, tokens in zip(embedded["documents"], embedded["embeddings"], blobs, strict=True):
            sentences.setdefault(s.meta["document_id"], []).append((s, vector, tokens))
        for p in out["splitter"]["passages"]:
            passages.setdefault(p.meta["document_id"], []).append(p)
        result = []
        for doc in docs:
            sents, pars = sentences.get(doc.id, []), passages.get(doc.id, [])
            if not sents:
                raise DocumentParseError(f"No sentences found in {doc.source!r}.")
            spans = [(s.meta["start"], s.meta["end"], s.meta["passage_index"]) for s, _, _ in sents]
            vectors = np.stack([vector for _, vector, _ in sents])
            # A new record: the caller's (possibly long) list of pending documents stays light.
            result.append(
                replace(
                    doc,
                    sentences=spans,
                    sentence_embeddings=vectors,
                    sentence_tokens=[tokens for _, _, tokens in sents],
                    passages=[(p.meta["start"], p.meta["end"]) for p in pars],
                    passage_embeddings=passage_vectors(vectors, [p for _, _, p in spans], len(pars)),
                )
            )
        return result


def passage_vectors(sentence_vectors: np.ndarray, passage_of: list[int], passages: int) -> np.ndarray:
    """A passage's vector is the normalised mean of its sentences' vectors (no second forward pass)."""
    sums = np.zeros((passages, sentence_vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, np.asarray(passage_of, dtype=np.int64), sentence_vectors)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
