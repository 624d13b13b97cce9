"""QAService: the single entry point. HTTP, widget, Slack and CLI only translate to and from it."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haystack import Document

from qa_service.contract import Answer, Turn
from qa_service.errors import DocumentNotFoundError, DocumentParseError, InvalidInputError
from qa_service.ingest.converters import convert_bytes, convert_file
from qa_service.ingest.sources import content_hash, discover, document_id, title_from_source
from qa_service.lexical import content_terms
from qa_service.pipeline.builders import build_indexing_pipeline, build_query_pipeline, open_store
from qa_service.settings import Settings
from qa_service.store.records import SourceDocument, StoredDocument

logger = logging.getLogger(__name__)

_ANAPHORA = frozenset(
    """
    he she it they him her his hers its their theirs them this that these those there then such
    former latter
    """.split()
)
_BATCH_CHARS = 2_000_000
UPLOAD_ORIGIN = "upload:"
# Capitalised words not at the start of a sentence: the names a pronoun can refer to.
_PRONOUN = re.compile(r"\b(he|she|they|him|her|them|his|their|hers|theirs)\b", re.IGNORECASE)
_POSSESSIVE = {"his", "their", "hers", "theirs"}
_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*")


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


@dataclass(frozen=True)
class DetailedAnswer:
    answer: Answer
    ranked: list[Document]
    retrieval_query: str


class QAService:
    def __init__(self, settings: Settings, create_index: bool = True) -> None:
        self.settings = settings
        self.store = open_store(settings, create=create_index)
        self._indexing = build_indexing_pipeline(settings)
        self._query = build_query_pipeline(settings, self.store)

    def warm_up(self) -> None:
        self._indexing.warm_up()
        self._query.warm_up()

    # --- asking ------------------------------------------------------------------------------
    def ask(self, question: str, history: list[Turn] | None = None, filters: dict[str, Any] | None = None) -> Answer:
        return self.ask_detailed(question, history, filters).answer

    def ask_detailed(
        self, question: str, history: list[Turn] | None = None, filters: dict[str, Any] | None = None
    ) -> DetailedAnswer:
        question = question.strip()
        if not question:
            raise InvalidInputError("The question is empty; send a non-empty `message`.")
        if len(question) > self.settings.max_message_chars:
            raise InvalidInputError(f"The question is longer than {self.settings.max_message_chars} characters.")
        query = self.retrieval_query(question, history or [])
        result = self._query.run(
            {
                "query_embedder": {"text": query},
                "dense": {"filters": filters},
                "keyword": {"query": query, "filters": filters},
                "passages": {"filters": filters},
                "ranker": {"query": query},
            },
            include_outputs_from={"ranker"},
        )
        return DetailedAnswer(result["answer_builder"]["answer"], result["ranker"]["documents"], query)

    def retrieval_query(self, question: str, history: list[Turn]) -> str:
        """Resolve follow-ups. A question with a pronoun or few content words is read with what it refers
        to: the names in the user's previous questions ("What did he say about negotiations?" after "Who
        is Mark Milley?" -> "... Mark Milley"), or, when those name nobody, the previous questions."""
        earlier = [t.content for t in history if t.role == "user"][-self.settings.history_turns :]
        if not earlier or self.settings.history_turns == 0:
            return question
        words = {w.lower().strip("?.,!'\"") for w in question.split()}
        if not (words & _ANAPHORA or len(content_terms(question)) <= 2):
            return question
        names = list(dict.fromkeys(n for text in earlier for n in _NAME.findall(text) if n.lower() not in words))
        if not names:
            return " ".join([*earlier, question])
        referent = " and ".join(names)
        pronoun = _PRONOUN.search(question)
        if pronoun is None:
            return f"{question} {referent}"
        if pronoun.group(0).lower() in _POSSESSIVE:
            referent += "'s"
        return question[: pronoun.start()] + referent + question[pronoun.end() :]

    # --- indexing ----------------------------------------------------------------------------
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
        for f in files:
            raw_hash = content_hash(f.path.read_bytes())
            known = existing.get(f.origin)
            if known is not None and known.content_hash == raw_hash and known.source == f.source:
                report.unchanged += 1
            else:
                todo.append((f, raw_hash, known is not None))
        seen = {f.origin for f in files}
        removed = [doc.id for origin, doc in existing.items() if origin not in seen]
        report.removed = len(removed)

        def converted() -> Iterator[tuple[SourceDocument, bool]]:
            for f, raw_hash, is_update in todo:
                try:
                    text = convert_file(f.path)
                except DocumentParseError as exc:
                    logger.warning("Skipping %s: %s", f.source, exc)
                    report.failed.append(f"{f.source}: {exc}")
                    continue
                yield self._unembedded(document_id(f.origin), f.source, f.origin, text, raw_hash, {}), is_update

        self._write(converted(), removed, report, len(todo), on_progress)
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
                    self._unembedded(document_id(origin), item.source, origin, item.text, digest, item.meta),
                    origin in known,
                )
            )
        removed = []
        if prune_origin_prefix is not None:
            wanted = {s.origin or s.source for s in sources}
            removed = [d.id for o, d in known.items() if o.startswith(prune_origin_prefix) and o not in wanted]
        report.removed = len(removed)
        self._write(iter(todo), removed, report, len(todo), on_progress)
        report.seconds = time.perf_counter() - started
        return report

    def delete_documents(self, document_ids: list[str]) -> int:
        return len(self.store.apply([], document_ids).deleted)

    # --- document management (HTTP uploads) ------------------------------------------------------
    def add_document(self, source: str, text: str | None = None, data: bytes | None = None) -> StoredDocument:
        """Index one uploaded document (text, or file bytes converted by type); re-uploading the same
        source name replaces it. Nothing is written unless conversion and embedding succeed."""
        source = source.strip()
        if not source or len(source) > 255:
            raise InvalidInputError("source must be 1-255 characters.")
        if text is None:
            if data is None:
                raise InvalidInputError("Send a file or a text.")
            text = convert_bytes(source, data)
        origin = UPLOAD_ORIGIN + source
        self.index_texts([TextSource(source=source, text=text, origin=origin)])
        return self.document(document_id(origin))

    def documents(self) -> list[StoredDocument]:
        return self.store.list_documents()

    def document(self, doc_id: str) -> StoredDocument:
        found = self.store.list_documents(doc_id)
        if found:
            return found[0]
        raise DocumentNotFoundError(f"Document {doc_id!r} not found.")

    def document_text(self, doc_id: str) -> str:
        text = self.store.document_text(doc_id)
        if text is None:
            raise DocumentNotFoundError(f"Document {doc_id!r} not found.")
        return text

    def citation_context(self, doc_id: str, start: int, end: int, window: int = 400) -> tuple[str, str, str, str]:
        """(source, text before, the sentence, text after) for a cited sentence; only spans that are
        indexed sentences are served, so this exposes cited context, not arbitrary document text."""
        if not self.store.has_sentence(doc_id, start, end):
            raise DocumentNotFoundError(f"No sentence {start}-{end} in document {doc_id!r}.")
        text = self.document_text(doc_id)
        before, after = text[max(0, start - window) : start], text[end : end + window]
        return self.document(doc_id).source, before, text[start:end], after

    def delete_document(self, doc_id: str) -> None:
        if not self.store.apply([], [doc_id]).deleted:
            raise DocumentNotFoundError(f"Document {doc_id!r} not found.")

    @staticmethod
    def _unembedded(
        doc_id: str, source: str, origin: str, text: str, digest: str, meta: dict[str, Any]
    ) -> SourceDocument:
        import numpy as np

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
    ) -> None:
        """Embed and commit in batches; every batch is one atomic generation of the index."""
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

        for doc, is_update in docs:
            batch.append((doc, is_update))
            chars += len(doc.text)
            if chars >= _BATCH_CHARS:
                flush()
        flush()

    def _embed(self, docs: list[SourceDocument]) -> list[SourceDocument]:
        import numpy as np

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
        out = self._indexing.run({"splitter": {"documents": inputs}})
        sentences: dict[str, list[Document]] = {}
        passages: dict[str, list[Document]] = {}
        for s in out["sentence_embedder"]["documents"]:
            sentences.setdefault(s.meta["document_id"], []).append(s)
        for p in out["passage_embedder"]["documents"]:
            passages.setdefault(p.meta["document_id"], []).append(p)
        for doc in docs:
            sents, pars = sentences.get(doc.id, []), passages.get(doc.id, [])
            if not sents:
                raise DocumentParseError(f"No sentences found in {doc.source!r}.")
            doc.sentences = [(s.meta["start"], s.meta["end"], s.meta["passage_index"]) for s in sents]
            doc.sentence_embeddings = np.array([s.embedding for s in sents], dtype=np.float32)
            doc.passages = [(p.meta["start"], p.meta["end"]) for p in pars]
            doc.passage_embeddings = np.array([p.embedding for p in pars], dtype=np.float32)
        return docs
