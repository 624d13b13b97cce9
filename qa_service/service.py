"""QAService: the single entry point. HTTP, widget, Slack and CLI only translate to and from it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from haystack import Document

from qa_service.answer_slots import AnswerSlots
from qa_service.bindings import Bindings, Bound
from qa_service.contract import Answer, AnswerMode, Turn
from qa_service.errors import CollectionNotFoundError, DocumentNotFoundError, InvalidInputError
from qa_service.followups import resolve_follow_up
from qa_service.generation.slots import GenerationSlots
from qa_service.indexer import Indexer, IndexReport, TextSource
from qa_service.ingest.converters import convert
from qa_service.ingest.locations import locate, location_meta
from qa_service.pipeline.builders import (
    build_generator,
    build_indexing_pipeline,
    encoder_for,
    open_catalog,
)
from qa_service.pipeline.runner import GraphRunner
from qa_service.settings import Settings
from qa_service.store.collections import DEFAULT
from qa_service.store.protocol import SentenceStore
from qa_service.store.records import Collection, StoredDocument

logger = logging.getLogger(__name__)

UPLOAD_ORIGIN = "upload:"
__all__ = ["DetailedAnswer", "IndexReport", "QAService", "TextSource"]


@dataclass(frozen=True)
class DetailedAnswer:
    answer: Answer
    ranked: list[Document]
    retrieval_query: str


class QAService:
    """Every method that reads or writes documents takes `collection` (a name; default `default`):
    each collection is its own store, so an answer, its keyword statistics and its abstention see
    only the asked collection. An unknown name raises CollectionNotFoundError."""

    def __init__(self, settings: Settings, create_index: bool = True) -> None:
        self.settings = settings
        self.catalog = open_catalog(settings, create=create_index)
        self._indexing = GraphRunner(build_indexing_pipeline(settings))
        self._bindings = Bindings(settings, self.catalog, self._indexing)
        self._query = self._bind(DEFAULT).query
        self._generator = build_generator(settings)
        self._answer_slots = AnswerSlots(settings.max_concurrent_answers)
        self._slots = GenerationSlots(settings.llm_max_concurrent, max(1, round(settings.llm_timeout_seconds / 4)))

    # --- collections ---------------------------------------------------------------------------
    def _bind(self, collection: str) -> Bound:
        return self._bindings.get(collection)

    @property
    def store(self) -> SentenceStore:
        """The store of collection `default` (kept for tools that address one store)."""
        return self._bind(DEFAULT).store

    @property
    def indexer(self) -> Indexer:
        """The indexer of collection `default`."""
        return self._bind(DEFAULT).indexer

    def store_of(self, collection: str = DEFAULT) -> SentenceStore:
        return self._bind(collection).store

    def collections(self) -> list[Collection]:
        return self.catalog.list()

    def collection(self, name: str) -> Collection:
        return self.catalog.get(name)

    def create_collection(self, name: str, public: bool = False) -> Collection:
        return self.catalog.create(name, public)

    def update_collection(self, name: str, new_name: str | None = None, public: bool | None = None) -> Collection:
        """Rename and/or make public or private (`default` can be toggled, not renamed)."""
        return self.catalog.update(name, new_name, public)

    def delete_collection(self, name: str) -> Collection:
        """Delete the collection with all its documents; returns what was deleted (its id names the
        conversations and feedback the caller removes)."""
        gone = self.catalog.delete(name)
        self._bindings.forget(gone.id)
        return gone

    def counts(self) -> tuple[int, int, int]:
        """(documents, sentences, passages) over every collection (health checks and metrics)."""
        totals = [0, 0, 0]
        for found in self.collections():
            try:
                counts = self.store_of(found.name).counts()
            except CollectionNotFoundError:  # deleted meanwhile
                continue
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
        return totals[0], totals[1], totals[2]

    def close(self) -> None:
        """Close every collection's store."""
        self._bindings.clear()
        self.catalog.close()

    def warm_up(self) -> None:
        """Load the model and run one query, so the first user does not pay for lazy initialisation;
        prompt templates are checked here (the LLM server itself is not called)."""
        self._indexing.warm_up()
        self._query.warm_up()
        if self._generator is not None:
            self._generator.warm_up()
        self.ask("warm up", mode="extractive")

    # --- asking ------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        history: list[Turn] | None = None,
        filters: dict[str, Any] | None = None,
        mode: AnswerMode | None = None,
        on_sentence: Callable[[str], None] | None = None,
        collection: str = DEFAULT,
    ) -> Answer:
        return self.ask_detailed(question, history, filters, mode, on_sentence, collection=collection).answer

    def ask_detailed(
        self,
        question: str,
        history: list[Turn] | None = None,
        filters: dict[str, Any] | None = None,
        mode: AnswerMode | None = None,
        on_sentence: Callable[[str], None] | None = None,
        collection: str = DEFAULT,
    ) -> DetailedAnswer:
        """The answer to `question`: extractive (the cited sentences), or generative (`mode`, else
        QA_ANSWER_MODE), which falls back to the extractive answer whenever the model cannot be trusted.
        A generative answer is handed to `on_sentence` sentence by sentence as each passes its check.
        Only `collection` is searched."""
        mode = mode or self.settings.answer_mode
        if mode == "generative" and self._generator is None:
            raise InvalidInputError("Generative answers need a language model: set QA_LLM_BASE_URL on the server.")
        question = self.check_message(question)
        bound = self._bind(collection)
        if mode == "generative":
            with self._slots.hold():
                return self._answer(bound, question, history, filters, mode, on_sentence)
        return self._answer(bound, question, history, filters, mode, on_sentence)

    def check_capacity(self, mode: AnswerMode | None) -> None:
        """GenerationBusyError now if `mode` (or the default) is generative and every slot is taken:
        streams call it before their response starts (the binding check is in `ask`)."""
        if (mode or self.settings.answer_mode) == "generative" and self._generator is not None:
            self._slots.check()

    def _answer(
        self,
        bound: Bound,
        question: str,
        history: list[Turn] | None,
        filters: dict[str, Any] | None,
        mode: AnswerMode,
        on_sentence: Callable[[str], None] | None,
    ) -> DetailedAnswer:
        query = self.retrieval_query(question, history or [])
        # At most QA_MAX_CONCURRENT_ANSWERS answers compute at once; waiting threads cost no CPU. (The
        # snapshot is taken inside: a queued answer reads the state committed when its turn comes.) The
        # question is reserved first: an answer ahead of it may embed it with its own in one pass.
        with (
            bound.embedder.reserved(query) as reservation,
            self._answer_slots,
            bound.store.snapshot(),  # every read of one answer sees one committed state
        ):
            result = bound.query.run(
                {
                    "query_embedder": {"text": query, "reservation": reservation},
                    "dense": {"filters": filters},
                    "keyword": {"query": query, "filters": filters},
                    "passages": {"filters": filters},
                    "ranker": {"query": query},
                    "grounding": {"query": query},
                },
                include_outputs_from=frozenset({"grounding"}),
            )
            answer, ranked = result["answer_builder"]["answer"], result["grounding"]["documents"]
            # read in the same snapshot as the offsets: the cited documents' locations (a generated
            # answer cites among the first `llm_sources` ranked sentences)
            cited = {c.document_id for c in answer.citations}
            if mode == "generative":
                cited |= {d.meta["document_id"] for d in ranked[: self.settings.llm_sources]}
            locations = {doc_id: _locations(bound.store, doc_id) for doc_id in cited}
        if mode == "generative" and self._generator is not None:
            if answer.abstained:  # the documents do not hold the answer: no model can cite one
                answer = answer.model_copy(update={"mode_used": "extractive-fallback"})
            else:
                out = self._generator.run(query=query, documents=ranked, extractive=answer, on_sentence=on_sentence)
                answer = out["answer"].model_copy(update={"mode_used": out["mode_used"]})
        return DetailedAnswer(self._located(answer, locations), ranked, query)

    def _located(self, answer: Answer, locations: dict[str, Any]) -> Answer:
        """The answer with each citation's location (slide, sheet row) where its document has them."""
        if not answer.citations:
            return answer
        citations = [
            c.model_copy(update={"location": locate(locations.get(c.document_id), c.start)}) for c in answer.citations
        ]
        return answer.model_copy(update={"citations": citations})

    def locations(self, doc_id: str, collection: str = DEFAULT) -> Any:
        """The `[[offset, label], ...]` a document's converter recorded (slides, rows), or None."""
        return _locations(self.store_of(collection), doc_id)

    def check_message(self, message: str) -> str:
        """The message as answered and stored: stripped, non-empty, at most QA_MAX_MESSAGE_CHARS."""
        message = message.strip()
        if not message:
            raise InvalidInputError("The question is empty; send a non-empty `message`.")
        if len(message) > self.settings.max_message_chars:
            raise InvalidInputError(f"The question is longer than {self.settings.max_message_chars} characters.")
        if "\x00" in message:
            raise InvalidInputError("The question contains NUL characters; send plain text.")
        return message

    def check_history(self, earlier: list[tuple[str, str]]) -> None:
        """Earlier messages a client sends ((role, text), e.g. OpenAI `messages`): at most
        QA_MAX_HISTORY_TURNS of them and QA_MAX_HISTORY_CHARS in all; user messages obey the message limit."""
        limits = self.settings
        if len(earlier) > limits.max_history_turns:
            raise InvalidInputError(f"Too many messages: send at most {limits.max_history_turns} before the question.")
        if sum(len(text) for _, text in earlier) > limits.max_history_chars:
            raise InvalidInputError(
                f"The earlier messages are longer than {limits.max_history_chars} characters in all; send fewer."
            )
        for role, text in earlier:
            if role == "user" and len(text.strip()) > limits.max_message_chars:
                raise InvalidInputError(
                    f"An earlier user message is longer than {limits.max_message_chars} characters."
                )

    def retrieval_query(self, question: str, history: list[Turn]) -> str:
        """The question as retrieved: follow-ups are resolved against the user's earlier questions
        (each cut to the message limit, so the query stays bounded whatever the history holds)."""
        if self.settings.history_turns == 0:
            return question
        limit = self.settings.max_message_chars
        earlier = [t.content[:limit] for t in history if t.role == "user"][-self.settings.history_turns :]
        return resolve_follow_up(question, earlier)

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings of `texts` by the index's encoder (the admin page groups questions)."""
        return encoder_for(self.settings).embed(texts)

    # --- indexing ----------------------------------------------------------------------------
    def index_paths(
        self,
        paths: Iterable[Path],
        on_progress: Callable[[int, int], None] | None = None,
        collection: str = DEFAULT,
    ) -> IndexReport:
        """Sync the collection with the files under `paths` (see `Indexer.index_paths`)."""
        return self._bind(collection).indexer.index_paths(paths, on_progress)

    def index_texts(
        self,
        sources: list[TextSource],
        prune_origin_prefix: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        collection: str = DEFAULT,
    ) -> IndexReport:
        """Index documents given as text (API uploads, evaluation corpora) into `collection`."""
        return self._bind(collection).indexer.index_texts(sources, prune_origin_prefix, on_progress)

    # --- document management (HTTP uploads) ------------------------------------------------------
    def add_document(
        self, source: str, text: str | None = None, data: bytes | None = None, collection: str = DEFAULT
    ) -> StoredDocument:
        """Index one uploaded document (text, or file bytes converted by type); re-uploading the same
        source name replaces it. Nothing is written unless conversion and embedding succeed."""
        bound = self._bind(collection)  # an unknown collection is refused before any conversion
        source = source.strip()
        if not source or len(source) > 255:
            raise InvalidInputError("source must be 1-255 characters.")
        meta: dict[str, Any] = {}
        if text is None:
            if data is None:
                raise InvalidInputError("Send a file or a text.")
            converted = convert(source, data)
            text, meta = converted.text, location_meta(converted)
        text = text.replace("\x00", "")  # as the file converters do (PostgreSQL cannot store NUL)
        if not text.strip():
            raise InvalidInputError(f"{source!r} contains no text.")
        origin = UPLOAD_ORIGIN + source
        bound.indexer.index_texts([TextSource(source=source, text=text, origin=origin, meta=meta)])
        return self.document(bound.indexer.document_id(origin), collection)

    def documents(self, collection: str = DEFAULT) -> list[StoredDocument]:
        return self.store_of(collection).list_documents()

    def document(self, doc_id: str, collection: str = DEFAULT) -> StoredDocument:
        found = self.store_of(collection).list_documents(doc_id)
        if found:
            return found[0]
        raise DocumentNotFoundError(f"Document {doc_id!r} not found in collection {collection!r}.")

    def document_text(self, doc_id: str, collection: str = DEFAULT) -> str:
        text = self.store_of(collection).document_text(doc_id)
        if text is None:
            raise DocumentNotFoundError(f"Document {doc_id!r} not found in collection {collection!r}.")
        return text

    def citation_context(
        self, doc_id: str, start: int, end: int, window: int = 400, collection: str = DEFAULT
    ) -> tuple[str, str, str, str]:
        """(source, text before, the sentence, text after) for a cited sentence; only spans that are
        indexed sentences are served, so this exposes cited context, not arbitrary document text."""
        if not self.store_of(collection).has_sentence(doc_id, start, end):
            raise DocumentNotFoundError(f"No sentence {start}-{end} in document {doc_id!r}.")
        text = self.document_text(doc_id, collection)
        before, after = text[max(0, start - window) : start], text[end : end + window]
        return self.document(doc_id, collection).source, before, text[start:end], after

    def location_of(self, doc_id: str, offset: int, collection: str = DEFAULT) -> str | None:
        """Where in its source the text at `offset` is ('slide 4', 'Sheet1 row 3'), for documents whose
        converter recorded locations (see `qa_service.ingest.locations`); None for the others."""
        return locate(self.locations(doc_id, collection), offset)

    def delete_document(self, doc_id: str, collection: str = DEFAULT) -> None:
        store = self.store_of(collection)
        missing = f"Document {doc_id!r} not found in collection {collection!r}."
        if not store.list_documents(doc_id):  # unknown: answered without writing a generation
            raise DocumentNotFoundError(missing)
        if not store.apply([], [doc_id]).deleted:
            raise DocumentNotFoundError(missing)


def _locations(store: SentenceStore, doc_id: str) -> Any:
    found = store.list_documents(doc_id)
    return found[0].meta.get("locations") if found else None
