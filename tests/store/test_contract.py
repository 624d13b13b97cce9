"""The backend contract: the same tests on the embedded store and on PostgreSQL + pgvector.

Everything goes through `QAService` and the store protocol, with the deterministic hashing encoder,
against a real PostgreSQL (tests/postgres_server.py) for the pgvector backend.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy

from qa_service.errors import DocumentNotFoundError, IndexMismatchError, InvalidInputError
from qa_service.indexer import TextSource
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.store.sentences import unblob
from tests.conftest import NEVER_ABSTAIN

DOCS = {
    "otters.txt": "Sea otters hold hands while they sleep. They float on kelp beds near the shore. "
    "An adult otter eats a quarter of its weight every day.",
    "volcano.txt": "Mount Etna erupted in 2021 for the fiftieth time. Lava flows reached the village of "
    "Fornazzo. Ash closed Catania airport for two days.",
    "bridge.txt": "The Golden Gate Bridge opened in 1937. Its main span is 1,280 metres long. "
    "Fog often hides the towers in summer.",
}


def backend_settings(backend: str, tmp_path: Path, database_url: str | None, model: str = "hash:64") -> Settings:
    return Settings(
        index_dir=tmp_path / "index",
        embedding_model=model,
        abstention=NEVER_ABSTAIN,
        store=backend,  # type: ignore[arg-type]
        database_url=database_url,
    )


@pytest.fixture(params=["faiss", "pgvector"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("database_url") if backend == "pgvector" else None

    def make(model: str = "hash:64") -> Settings:
        return backend_settings(backend, tmp_path, url, model)

    return make


@pytest.fixture
def service(make_settings) -> Iterator[QAService]:  # type: ignore[no-untyped-def]
    svc = QAService(make_settings())
    svc.index_texts([TextSource(source=name, text=text, origin=f"test:{name}") for name, text in DOCS.items()])
    yield svc
    svc.store.close()


def _doc_id(service: QAService, source: str) -> str:
    return next(d.id for d in service.documents() if d.source == source)


def test_index_counts_documents_and_offsets(service: QAService) -> None:
    store = service.store
    assert store.counts() == (3, 9, 3) and store.count_documents() == 9 and store.sentence_count == 9
    assert [d.source for d in service.documents()] == sorted(DOCS)
    for doc in service.documents():
        text = service.document_text(doc.id)
        assert text == DOCS[doc.source]
        rows = [r for r in store.sentence_rows(store.allowed_sentence_ids(_source_filter(doc.source)))]
        assert len(rows) == doc.sentence_count == 3
        for row in rows:
            assert text[row["start"] : row["end"]] == row["text"] and row["document_id"] == doc.id
            assert store.has_sentence(doc.id, row["start"], row["end"])
            vector = unblob(row["embedding"], 64)  # float32 (pgvector) or float16 (embedded, the default)
            assert abs(float(vector @ vector) - 1.0) < 1e-2 and row["tokens"]
    assert not store.has_sentence(_doc_id(service, "otters.txt"), 0, 5)


def test_answer_cites_the_source_sentence_with_offsets(service: QAService) -> None:
    answer = service.ask("When did the Golden Gate Bridge open?")
    top = answer.citations[0]
    assert top.source == "bridge.txt" and top.text == "The Golden Gate Bridge opened in 1937."
    assert service.document_text(top.document_id)[top.start : top.end] == top.text
    source, _before, sentence, after = service.citation_context(top.document_id, top.start, top.end)
    assert (source, sentence) == ("bridge.txt", top.text) and after.startswith(" Its main span")


def test_search_primitives(service: QAService) -> None:
    store = service.store
    encoder_query = service._query.pipeline.get_component("query_embedder")  # the same encoder as indexing
    vector = encoder_query.run(text="Mount Etna erupted in 2021 for the fiftieth time.")["vector"]
    (best, score), *_ = store.dense_sentences(vector, 3)
    assert store.sentence_rows([best], vectors=False)[0]["text"].startswith("Mount Etna erupted") and score > 0.9
    keyword = store.keyword_sentences("Which airport closed because of ash?", 5)
    assert store.sentence_rows([keyword[0][0]])[0]["text"] == "Ash closed Catania airport for two days."
    assert all(a[1] >= b[1] for a, b in itertools.pairwise(keyword))
    assert store.keyword_sentences("the of and", 5) == []  # stopwords only
    ids = [k for k, _ in keyword]
    assert {k for k, _ in store.keyword_sentences("airport", 5, restrict=ids[1:])} <= set(ids[1:])
    passages = store.dense_passages(vector, 1)
    members = store.sentence_rows(store.sentences_of_passages([passages[0][0]]), vectors=False)
    assert {r["document_id"] for r in members} == {_doc_id(service, "volcano.txt")} and len(members) == 3
    vectors = store.passage_vectors([passages[0][0]])
    assert vectors[passages[0][0]].shape == (64,)
    assert store.term_frequencies(["otter", "nonexistent"]) == {"otter": 2}


def _source_filter(source: str) -> dict[str, object]:
    return {"field": "meta.source", "operator": "==", "value": source}


def test_filters_restrict_every_retriever(service: QAService) -> None:
    answer = service.ask("When did the Golden Gate Bridge open?", filters=_source_filter("otters.txt"))
    assert answer.citations and {c.source for c in answer.citations} == {"otters.txt"}
    either = {"operator": "OR", "conditions": [_source_filter("otters.txt"), _source_filter("volcano.txt")]}
    vector = np.ones(64, dtype=np.float32) / 8
    rows = service.store.sentence_rows([k for k, _ in service.store.dense_sentences(vector, 20, either)])
    assert len(rows) == 6 and {r["source"] for r in rows} == {"otters.txt", "volcano.txt"}
    with pytest.raises(InvalidInputError):
        service.ask("anything", filters={"field": "meta.source", "operator": "~~", "value": 1})


def test_reindex_is_incremental_and_replaces_whole_documents(service: QAService) -> None:
    generation = service.store.generation
    changed = DOCS["otters.txt"].replace("a quarter of its weight", "a third of its weight")
    sources = [
        TextSource(source=n, text=changed if n == "otters.txt" else t, origin=f"test:{n}") for n, t in DOCS.items()
    ]
    report = service.index_texts(sources[:2], prune_origin_prefix="test:")  # bridge.txt disappears
    assert (report.updated, report.unchanged, report.removed) == (1, 1, 1)
    assert service.store.generation > generation
    assert service.store.counts() == (2, 6, 2)
    assert service.store.term_frequencies(["quarter", "third", "bridg", "golden"]) == {"third": 1}
    answer = service.ask("How much does an adult otter eat every day?")
    assert answer.citations[0].text == "An adult otter eats a third of its weight every day."
    assert service.index_texts(sources[:2], prune_origin_prefix="test:").unchanged == 2


def test_delete_document(service: QAService) -> None:
    doc_id = _doc_id(service, "volcano.txt")
    service.delete_document(doc_id)
    assert service.store.counts() == (2, 6, 2)
    assert "volcano.txt" not in {c.source for c in service.ask("When did Mount Etna erupt?").citations}
    with pytest.raises(DocumentNotFoundError):
        service.delete_document(doc_id)
    with pytest.raises(DocumentNotFoundError):
        service.document_text(doc_id)


def test_haystack_document_store_protocol(service: QAService) -> None:
    store = service.store
    docs = [
        Document(content=f"Sentence {i} about glaciers.", embedding=list(np.eye(64)[i]), meta={"document_id": "g"})
        for i in range(2)
    ]
    assert store.write_documents(docs) == 2
    with pytest.raises(DuplicateDocumentError):
        store.write_documents(docs)
    assert store.write_documents(docs, DuplicatePolicy.SKIP) == 0
    assert store.write_documents(docs[:1], DuplicatePolicy.OVERWRITE) == 1
    found = store.filter_documents({"field": "meta.document_id", "operator": "==", "value": "g"})
    assert [d.content for d in found] == ["Sentence 0 about glaciers."]
    assert found[0].id == "g:s0" and found[0].meta["start"] == 0 and len(found[0].embedding or []) == 64
    assert store.count_documents() == 10
    store.delete_documents([_doc_id(service, "otters.txt") + ":s1", "g"])
    assert store.count_documents() == 8
    assert not [d for d in store.filter_documents() if d.content == "They float on kelp beds near the shore."]
    restored = type(store).from_dict(store.to_dict()) if _serialisable(store) else store
    assert restored.count_documents() == 8


def _serialisable(store: object) -> bool:
    """A store built from a plain-text database URL cannot be serialised (Haystack keeps secrets out
    of pipeline files); one built from an environment variable can: see test_pgvector_store."""
    return type(store).__name__ == "FaissSQLiteDocumentStore"


def test_refuses_another_model(service: QAService, make_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexMismatchError, match="hash:64"):
        QAService(make_settings(model="hash:32"))


def test_concurrent_ingest_loses_and_duplicates_nothing(make_settings) -> None:  # type: ignore[no-untyped-def]
    first, second = QAService(make_settings()), QAService(make_settings())  # two writers, one store
    texts = {f"doc{i}.txt": f"Document {i} talks about topic {i}. It has a second sentence {i}." for i in range(12)}
    sources = [TextSource(source=n, text=t, origin=f"c:{n}") for n, t in texts.items()]
    errors: list[BaseException] = []

    def run(service: QAService, part: list[TextSource]) -> None:
        try:
            for source in part:
                service.index_texts([source])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # Both writers index every document (same ids), in opposite orders, at the same time.
    threads = [
        threading.Thread(target=run, args=(first, sources)),
        threading.Thread(target=run, args=(second, sources[::-1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for service in (first, second):
        assert service.store.counts() == (12, 24, 12)
        rows = service.store.filter_documents()
        assert len({d.id for d in rows}) == len(rows) == 24
    first.store.close()
    second.store.close()
