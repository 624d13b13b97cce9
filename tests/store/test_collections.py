"""Collections on both backends: the catalog contract, isolation of answers, keyword statistics and
abstention, and deletion (counts of everything a collection holds, before and after).

Each collection is its own store, so these tests go through `QAService` and the store protocol with
the deterministic hashing encoder and the default abstention model (refusals are real).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_service.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CollectionProtectedError,
    DocumentNotFoundError,
    InvalidInputError,
)
from qa_service.indexer import TextSource
from qa_service.ingest.sources import document_id
from qa_service.lexical import content_terms
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.store.protocol import SentenceStore
from tests.store.test_contract import backend  # noqa: F401  (the fixture: faiss and pgvector)

HR = {
    "leave.txt": "Every employee gets 25 days of paid vacation per year. Vacation requests go to your manager "
    "two weeks ahead. Unused vacation days expire at the end of March.",
    "remote.txt": "The team may work remotely three days per week. Remote work needs a quiet room and a stable "
    "connection.",
}
ENG = {
    "restart.txt": "To restart the payments database, run the failover script on the standby node. The team on "
    "call approves every restart of the database.",
    "deploy.txt": "Deploys to production happen on Tuesdays and Thursdays. The team rolls a failed deploy back "
    "within ten minutes.",
}
HR_QUESTION = "How many days of paid vacation does an employee get?"
ENG_QUESTION = "How do I restart the payments database?"


def collection_settings(store: str, tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        index_dir=tmp_path / "index",
        embedding_model="hash:64",
        store=store,  # type: ignore[arg-type]
        database_url=database_url,
    )


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:  # noqa: F811
    url = request.getfixturevalue("database_url") if backend == "pgvector" else None
    return collection_settings(backend, tmp_path, url)


def sources(docs: dict[str, str]) -> list[TextSource]:
    return [TextSource(source=name, text=text, origin=f"test:{name}") for name, text in docs.items()]


@pytest.fixture
def service(settings: Settings) -> Iterator[QAService]:
    svc = QAService(settings)
    svc.create_collection("hr")
    svc.create_collection("eng")
    svc.index_texts(sources(HR), collection="hr")
    svc.index_texts(sources(ENG), collection="eng")
    yield svc
    svc.close()


def keyword_rows(store: SentenceStore) -> int:
    """Rows of the collection's keyword statistics (the term frequencies of every word it holds)."""
    terms = sorted({t for d in store.list_documents() for t in content_terms(store.document_text(d.id) or "")})
    return sum(1 for n in store.term_frequencies(terms).values() if n > 0)


def holdings(store: SentenceStore) -> dict[str, int]:
    documents, sentences, passages = store.counts()
    vectors = len(store.dense_sentences(_unit(store.dimension), 10_000))
    return {
        "documents": documents,
        "sentences": sentences,
        "passages": passages,
        "vectors": vectors,
        "keywords": keyword_rows(store),
    }


def _unit(dimension: int):  # type: ignore[no-untyped-def]
    import numpy as np

    vector = np.ones(dimension, dtype=np.float32)
    return vector / np.linalg.norm(vector)


# --- the catalog -------------------------------------------------------------------------------------
def test_catalog_creates_lists_renames_toggles_and_deletes(settings: Settings) -> None:
    service = QAService(settings)
    assert [(c.id, c.name, c.public) for c in service.collections()] == [("default", "default", True)]
    hr = service.create_collection("hr")
    web = service.create_collection("web-faq", public=True)
    assert (hr.name, hr.public, web.public) == ("hr", False, True)
    assert hr.id != web.id and "default" not in (hr.id, web.id)
    assert [c.name for c in service.collections()] == ["default", "hr", "web-faq"]
    assert service.collection("hr") == hr

    renamed = service.update_collection("hr", new_name="people")
    assert (renamed.id, renamed.name) == (hr.id, "people")
    with pytest.raises(CollectionNotFoundError):
        service.collection("hr")
    assert service.update_collection("people", public=True).public
    assert not service.update_collection("people", public=False).public
    assert service.update_collection("default", public=False).public is False  # toggled, not renamed

    gone = service.delete_collection("people")
    assert gone.id == hr.id
    assert [c.name for c in service.collections()] == ["default", "web-faq"]
    with pytest.raises(CollectionNotFoundError):
        service.ask("anything", collection="people")
    service.close()


@pytest.mark.parametrize("name", ["", "HR", "hr team", "hr_team", "é", "a" * 65, "../etc", "hr/x"])
def test_bad_names_are_refused_with_the_rule(settings: Settings, name: str) -> None:
    service = QAService(settings)
    with pytest.raises(InvalidInputError, match=r"\[a-z0-9-\]"):
        service.create_collection(name)
    service.create_collection("ok")
    with pytest.raises(InvalidInputError, match=r"1-64 characters"):
        service.update_collection("ok", new_name=name)
    service.close()


def test_default_cannot_be_deleted_or_renamed(settings: Settings) -> None:
    service = QAService(settings)
    with pytest.raises(CollectionProtectedError, match="default"):
        service.delete_collection("default")
    with pytest.raises(CollectionProtectedError, match="default"):
        service.update_collection("default", new_name="main")
    assert [c.name for c in service.collections()] == ["default"]
    service.close()


def test_duplicate_names_conflict(settings: Settings) -> None:
    service = QAService(settings)
    service.create_collection("hr")
    service.create_collection("eng")
    for attempt in (lambda: service.create_collection("hr"), lambda: service.create_collection("default")):
        with pytest.raises(CollectionExistsError):
            attempt()
    with pytest.raises(CollectionExistsError):
        service.update_collection("eng", new_name="hr")
    assert [c.name for c in service.collections()] == ["default", "hr", "eng"]
    service.close()


def test_a_deleted_name_is_recreated_empty_with_a_new_id(service: QAService) -> None:
    old = service.collection("hr")
    assert service.documents("hr")
    service.delete_collection("hr")
    new = service.create_collection("hr")
    assert new.id != old.id
    assert service.documents("hr") == [] and service.store_of("hr").counts() == (0, 0, 0)
    assert service.ask(HR_QUESTION, collection="hr").citations == []
    # ids are never reused, even of the newest deleted collection
    service.delete_collection("hr")
    assert service.create_collection("hr").id not in {old.id, new.id}


def test_another_service_sees_created_renamed_and_deleted_collections(service: QAService, settings: Settings) -> None:
    other = QAService(settings)  # another replica / process over the same index
    assert [c.name for c in other.collections()] == ["default", "hr", "eng"]
    assert other.ask(HR_QUESTION, collection="hr").citations[0].source == "leave.txt"
    service.create_collection("sales")
    assert other.collection("sales").id == service.collection("sales").id
    service.update_collection("eng", new_name="engineering")
    assert other.ask(ENG_QUESTION, collection="engineering").citations[0].source == "restart.txt"
    service.delete_collection("hr")
    with pytest.raises(CollectionNotFoundError):
        other.ask(HR_QUESTION, collection="hr")
    with pytest.raises(CollectionNotFoundError):
        other.documents("hr")
    other.close()


# --- isolation ---------------------------------------------------------------------------------------
def test_each_collection_answers_only_from_its_documents(service: QAService) -> None:
    hr_ids = {d.id for d in service.documents("hr")}
    eng_ids = {d.id for d in service.documents("eng")}
    assert len(hr_ids) == len(eng_ids) == 2 and not hr_ids & eng_ids
    # Overlapping words ("team", "days"): each collection cites only its own documents.
    for question in (HR_QUESTION, ENG_QUESTION, "What does the team do?", "How many days?"):
        for name, own in (("hr", hr_ids), ("eng", eng_ids)):
            detailed = service.ask_detailed(question, collection=name)
            assert {c.document_id for c in detailed.answer.citations} <= own
            assert {d.meta["document_id"] for d in detailed.ranked} <= own
    hr = service.ask(HR_QUESTION, collection="hr")
    eng = service.ask(ENG_QUESTION, collection="eng")
    assert not hr.abstained and hr.citations[0].source == "leave.txt" and "25 days" in hr.citations[0].text
    assert not eng.abstained and eng.citations[0].source == "restart.txt"
    # A question only the other collection can answer is refused.
    assert service.ask(ENG_QUESTION, collection="hr").abstained
    assert service.ask(HR_QUESTION, collection="eng").abstained
    assert service.ask(HR_QUESTION).citations == []  # default holds nothing
    assert service.documents() == []


def test_documents_are_addressed_in_their_collection(service: QAService) -> None:
    doc = service.add_document("policy.md", text="Parking is free for every employee.", collection="hr")
    assert doc.id in {d.id for d in service.documents("hr")}
    assert service.document_text(doc.id, "hr").startswith("Parking")
    for call in (
        lambda: service.document(doc.id, "eng"),
        lambda: service.document_text(doc.id),
        lambda: service.delete_document(doc.id, "eng"),
        lambda: service.citation_context(doc.id, 0, 10, collection="eng"),
    ):
        with pytest.raises(DocumentNotFoundError):
            call()
    service.delete_document(doc.id, "hr")
    assert doc.id not in {d.id for d in service.documents("hr")}
    with pytest.raises(CollectionNotFoundError):
        service.add_document("x.txt", text="Text.", collection="missing")


def test_document_ids_stay_in_default_and_are_unique_across_collections(service: QAService) -> None:
    same = [TextSource(source="same.txt", text="The same file in two places.", origin="test:same.txt")]
    service.index_texts(same)
    service.index_texts(same, collection="hr")
    in_default = service.documents()[0].id
    assert in_default == document_id("test:same.txt")  # as before collections
    in_hr = next(d.id for d in service.documents("hr") if d.source == "same.txt")
    assert in_hr != in_default


def test_idf_and_abstention_of_one_collection_ignore_bulk_uploads_to_another(service: QAService) -> None:
    hr_store = service.store_of("hr")
    terms = sorted({t for text in HR.values() for t in content_terms(text)} | set(content_terms(ENG_QUESTION)))
    questions = [HR_QUESTION, ENG_QUESTION, "How many days per week may the team work remotely?"]

    def observe() -> tuple[dict[str, int], list[tuple[float, bool, list[tuple[str, int, int]], list[float]]]]:
        answers = []
        for q in questions:
            detailed = service.ask_detailed(q, collection="hr")
            a = detailed.answer
            scores = [float(d.score or 0.0) for d in detailed.ranked]
            answers.append((a.confidence, a.abstained, [(c.document_id, c.start, c.end) for c in a.citations], scores))
        return hr_store.term_frequencies(terms), answers

    before = observe()
    # A bulk upload to eng using every word of hr's documents and questions, many times over.
    bulk = {
        f"bulk-{i}.txt": f"{text} Employee vacation days and the payments database, copy {i}."
        for i, text in enumerate([*HR.values(), *ENG.values()] * 10)
    }
    service.index_texts(sources(bulk), collection="eng")
    assert service.store_of("eng").counts()[0] == 2 + len(bulk)
    after = observe()
    assert after == before  # exactly: term frequencies, confidences, refusals, citations, scores
    assert before[1][1][1] is True  # the eng question is still refused in hr


# --- deletion ----------------------------------------------------------------------------------------
def test_deleting_a_collection_removes_all_it_holds_and_nothing_else(service: QAService, settings: Settings) -> None:
    service.index_texts(sources({"welcome.txt": "Welcome to the team. Lunch is served at noon."}))
    service.create_collection("sales")
    service.index_texts(sources({"pricing.txt": "The basic plan costs ten euros per month."}), collection="sales")
    stores = {name: service.store_of(name) for name in ("default", "hr", "eng", "sales")}
    before = {name: holdings(store) for name, store in stores.items()}
    assert all(v > 0 for v in before["eng"].values())
    hr_before = service.ask(HR_QUESTION, collection="hr")

    service.delete_collection("eng")

    with pytest.raises(CollectionNotFoundError):
        service.store_of("eng")
    for name in ("default", "hr", "sales"):
        assert holdings(stores[name]) == before[name]
    assert service.ask(HR_QUESTION, collection="hr") == hr_before
    assert_storage_gone(settings, service, before_names={"hr", "sales"})
    reopened = QAService(settings)  # nothing of eng comes back on reopening
    assert [c.name for c in reopened.collections()] == ["default", "hr", "sales"]
    for name in ("default", "hr", "sales"):
        assert holdings(reopened.store_of(name)) == before[name]
    # Nothing of it is left to be found under its name either: re-created, it holds nothing.
    reopened.create_collection("eng")
    assert holdings(reopened.store_of("eng")) == dict.fromkeys(before["eng"], 0)


def assert_storage_gone(settings: Settings, service: QAService, before_names: set[str]) -> None:
    """The deleted collection's physical storage is gone: its directory, or its schema."""
    ids = {c.id for c in service.collections() if c.name in before_names}
    if settings.store == "faiss":
        on_disk = {p.name for p in (settings.index_dir / "collections").iterdir()}
        assert on_disk == ids
    else:
        with service.store.db.connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'qa_c_%'").fetchall()
        assert {r[0] for r in rows} == {f"qa_c_{i}" for i in ids}


def test_a_postgres_store_of_a_collection_deleted_by_another_replica_fails_cleanly(
    tmp_path: Path, database_url: str
) -> None:
    settings = collection_settings("pgvector", tmp_path, database_url)
    first, second = QAService(settings), QAService(settings)
    first.create_collection("eng")
    first.index_texts(sources(ENG), collection="eng")
    held = second.store_of("eng")  # the other replica has it open
    assert len(held.list_documents()) == 2
    first.delete_collection("eng")
    for read in (held.list_documents, lambda: held.keyword_sentences("restart database", 5)):
        with pytest.raises(CollectionNotFoundError):
            read()
    with pytest.raises(CollectionNotFoundError):
        second.ask(ENG_QUESTION, collection="eng")
    first.close()
