"""PostgreSQL bulk loads: a large upload into an empty collection builds its search indexes after the
rows, answers exactly as a row-by-row load does, and never leaves the collection without its indexes
(an error, a crash, a non-empty collection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from qa_service.indexer import TextSource
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.store.postgres import bulk
from tests.store.test_contract import DOCS, backend_settings

pytestmark = pytest.mark.integration

QUESTIONS = ("When did Mount Etna erupt?", "How long is the main span?", "What do otters eat?", "Which airport closed?")
MORE = {
    f"extra-{n}.txt": f"Report {n} says the harbour crane lifted {n} containers. The ferry left at {n} o'clock."
    for n in range(12)
}


def sources(docs: dict[str, str]) -> list[TextSource]:
    return [TextSource(source=n, text=t, origin=f"test:{n}") for n, t in docs.items()]


def settings(tmp_path: Path, url: str, **changes: Any) -> Settings:
    # batches of ~200 characters: the load below commits many generations inside one bulk load
    return backend_settings("pgvector", tmp_path, url).model_copy(update={"index_batch_chars": 200, **changes})


def search_indexes(url: str, schema: str = "public") -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return bulk.search_indexes(conn, schema)


def answers(service: QAService) -> list[tuple[str, list[tuple[str, int, int]], float]]:
    out = []
    for question in QUESTIONS:
        answer = service.ask(question)
        out.append((question, [(c.source, c.start, c.end) for c in answer.citations], round(answer.confidence, 6)))
    return out


def test_a_bulk_load_builds_the_same_indexes_after_the_rows_and_answers_the_same(tmp_path: Path, postgres: Any) -> None:
    row_by_row_url, bulk_url = postgres.create_database("bulk_rows"), postgres.create_database("bulk_load")
    reference = QAService(settings(tmp_path / "a", row_by_row_url, pgvector_bulk_min_chars=0))
    reference.index_texts(sources({**DOCS, **MORE}))
    expected = search_indexes(row_by_row_url)
    # one full-text index (over the stored tsvector) and the two HNSW graphs; passages are keyword-scored
    # by id only
    using = {name: definition.split(" USING ", 1)[1] for name, definition in expected}
    assert using == {
        "qa_sentences_hnsw": "hnsw (embedding vector_cosine_ops)",
        "qa_sentences_bm25": "hnsw (bm25 sparsevec_ip_ops)",
        "qa_sentences_keyword": "gin (keywords)",
        "qa_passages_hnsw": "hnsw (embedding vector_cosine_ops)",
    }

    service = QAService(settings(tmp_path / "b", bulk_url, pgvector_bulk_min_chars=100))
    seen_during: list[set[str]] = []

    def look(done: int, total: int) -> None:
        seen_during.append(set(dict(search_indexes(bulk_url))))

    report = service.index_texts(sources({**DOCS, **MORE}), on_progress=look)
    assert report.added == len(DOCS) + len(MORE) and len(seen_during) > 3  # several committed batches
    assert all(found == set() for found in seen_during)  # no index maintained row by row meanwhile
    assert search_indexes(bulk_url) == expected  # built at the end, same definitions
    assert answers(service) == answers(reference)
    assert service.store.counts() == reference.store.counts()


def test_a_collection_that_holds_sentences_keeps_its_indexes_through_an_upload(
    tmp_path: Path, database_url: str
) -> None:
    service = QAService(settings(tmp_path, database_url, pgvector_bulk_min_chars=100))
    service.index_texts(sources(DOCS))
    before = search_indexes(database_url)
    seen_during: list[list[tuple[str, str]]] = []
    service.index_texts(sources(MORE), on_progress=lambda done, total: seen_during.append(search_indexes(database_url)))
    assert seen_during and all(found == before for found in seen_during)
    assert service.ask("How many containers did the crane lift in report 7?").citations[0].source == "extra-7.txt"


def test_small_uploads_and_a_zero_threshold_maintain_indexes_row_by_row(tmp_path: Path, postgres: Any) -> None:
    for threshold in (10**9, 0):  # above the upload's size; turned off
        url = postgres.create_database(f"bulk_off_{threshold}")
        service = QAService(settings(tmp_path / str(threshold), url, pgvector_bulk_min_chars=threshold))
        counts: list[int] = []

        def look(done: int, total: int, url: str = url, counts: list[int] = counts) -> None:
            counts.append(len(search_indexes(url)))

        service.index_texts(sources(MORE), on_progress=look)
        assert counts and set(counts) == {4}
        service.store.close()


def test_an_upload_that_fails_half_way_still_builds_the_indexes(tmp_path: Path, database_url: str) -> None:
    service = QAService(settings(tmp_path, database_url, pgvector_bulk_min_chars=100))

    def fail_after_three(done: int, total: int) -> None:
        if done >= 3:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        service.index_texts(sources({**DOCS, **MORE}), on_progress=fail_after_three)
    assert len(search_indexes(database_url)) == 4
    documents, sentences, _ = service.store.counts()
    assert 3 <= documents < len(DOCS) + len(MORE) and sentences > 0  # the committed batches stay, whole
    assert service.ask("Which airport closed?").citations[0].source == "volcano.txt"


def test_a_process_killed_after_dropping_the_indexes_gets_them_back_at_the_next_open(
    tmp_path: Path, database_url: str
) -> None:
    service = QAService(settings(tmp_path, database_url))
    expected = search_indexes(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:  # what a killed bulk load leaves
        bulk.drop_search_indexes(conn, "public")
        # Every index built from here on, with its definition (an event trigger: what PostgreSQL did).
        conn.execute("CREATE TABLE built_indexes (identity text, definition text)")
        conn.execute(
            "CREATE FUNCTION log_index() RETURNS event_trigger LANGUAGE plpgsql AS $$ DECLARE r record; BEGIN "
            "FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' LOOP "
            "INSERT INTO built_indexes VALUES (r.object_identity, pg_get_indexdef(r.objid)); END LOOP; END $$"
        )
        conn.execute("CREATE EVENT TRIGGER log_index ON ddl_command_end EXECUTE FUNCTION log_index()")
    assert search_indexes(database_url) == []
    service.store.close()
    from qa_service.store.postgres.pool import Postgres

    Postgres.close_shared(database_url)  # a new process: its own pool and setup
    QAService(settings(tmp_path, database_url))
    assert search_indexes(database_url) == expected
    with psycopg.connect(database_url, autocommit=True) as conn:
        built = conn.execute("SELECT identity, definition FROM built_indexes").fetchall()
        conn.execute("DROP EVENT TRIGGER log_index")
    # each dropped index built once, ours: never the integration's to_tsvector(content) GIN first
    assert sorted(identity for identity, _ in built) == sorted(f"public.{name}" for name, _ in expected)
    assert not any("to_tsvector" in definition for _, definition in built)


def test_bulk_loads_into_a_collection_rebuild_that_collection_only(tmp_path: Path, database_url: str) -> None:
    service = QAService(settings(tmp_path, database_url, pgvector_bulk_min_chars=100))
    service.index_texts(sources(DOCS))
    service.create_collection("harbour")
    default_before = search_indexes(database_url)
    seen: list[list[tuple[str, str]]] = []
    service.index_texts(
        sources(MORE), collection="harbour", on_progress=lambda done, total: seen.append(search_indexes(database_url))
    )
    assert seen and all(found == default_before for found in seen)  # the default collection kept its indexes
    assert service.ask("How many containers did the crane lift in report 7?", collection="harbour").citations


def test_maintenance_work_mem_must_be_a_postgresql_size() -> None:
    with pytest.raises(ValidationError, match="pgvector_maintenance_work_mem"):
        Settings(pgvector_maintenance_work_mem="lots")
    assert Settings(pgvector_maintenance_work_mem="512MB").pgvector_maintenance_work_mem == "512MB"
