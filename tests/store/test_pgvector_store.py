"""What only the PostgreSQL backend promises: snapshots across writers, serialisation through an
environment variable, clear errors when the database is missing or unreachable."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from haystack.utils import Secret
from pydantic import ValidationError

from qa_service.errors import DatabaseUnavailableError, IndexNotFoundError
from qa_service.indexer import TextSource
from qa_service.pipeline.retrievers import KeywordSentenceRetriever
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.store.postgres.store import PgvectorSentenceStore
from tests.store.test_contract import DOCS, backend_settings


def indexed(tmp_path: Path, url: str) -> QAService:
    service = QAService(backend_settings("pgvector", tmp_path, url))
    service.index_texts([TextSource(source=n, text=t, origin=f"test:{n}") for n, t in DOCS.items()])
    return service


def test_a_snapshot_does_not_see_writes_committed_meanwhile(tmp_path: Path, database_url: str) -> None:
    reader, writer = indexed(tmp_path, database_url), QAService(backend_settings("pgvector", tmp_path, database_url))
    volcano = next(d.id for d in reader.documents() if d.source == "volcano.txt")
    with reader.store.snapshot():
        before = reader.store.keyword_sentences("Etna lava ash", 10)
        done = threading.Event()
        threading.Thread(target=lambda: (writer.delete_document(volcano), done.set())).start()
        assert done.wait(30)  # the delete committed while the snapshot is open
        assert reader.store.counts() == (3, 9, 3)
        assert reader.store.keyword_sentences("Etna lava ash", 10) == before
        assert {r["document_id"] for r in reader.store.sentence_rows([k for k, _ in before])} == {volcano}
    assert reader.store.counts() == (2, 6, 2) and reader.store.keyword_sentences("Etna lava ash", 10) == []
    answer = reader.ask("When did Mount Etna erupt?")
    assert all(c.source != "volcano.txt" for c in answer.citations)


def test_serialises_with_the_url_in_an_environment_variable(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed(tmp_path, database_url)
    monkeypatch.setenv("QA_TEST_DATABASE_URL", database_url)
    store = PgvectorSentenceStore(Secret.from_env_var("QA_TEST_DATABASE_URL"), model="hash:64", dimension=64)
    retriever = KeywordSentenceRetriever(store, top_k=3)
    data = retriever.to_dict()
    assert database_url not in str(data)
    restored = KeywordSentenceRetriever.from_dict(data)
    docs = restored.run(query="Which airport closed?")["documents"]
    assert docs[0].content == "Ash closed Catania airport for two days." and docs[0].meta["source"] == "volcano.txt"
    with pytest.raises(ValueError, match="token"):
        PgvectorSentenceStore(Secret.from_token(database_url), model="hash:64", dimension=64).to_dict()


def test_an_empty_database_is_not_an_index_when_asked_not_to_create(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(IndexNotFoundError, match="qa-service index"):
        QAService(backend_settings("pgvector", tmp_path, database_url), create_index=False)


def test_unreachable_database_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://qa:s3cret@127.0.0.1:{port}/qa"
    with pytest.raises(DatabaseUnavailableError) as exc:
        QAService(backend_settings("pgvector", tmp_path, url))
    assert "s3cret" not in str(exc.value) and f"127.0.0.1:{port}/qa" in str(exc.value)
    assert exc.value.http_status == 503


def test_settings_require_a_database_url_for_pgvector() -> None:
    with pytest.raises(ValidationError, match="QA_DATABASE_URL"):
        Settings(store="pgvector")


def test_documents_under_takes_any_number_of_origins_and_folders(tmp_path: Path, database_url: str) -> None:
    service = QAService(backend_settings("pgvector", tmp_path, database_url))
    service.index_texts(
        [
            TextSource(source="a.txt", text="Alpha text here.", origin="docs/a.txt"),
            TextSource(source="b.txt", text="Beta text here.", origin="docs/sub/b.txt"),
            TextSource(source="c.txt", text="Gamma text here.", origin="docs-old/c.txt"),
            TextSource(source="d.txt", text="Delta text here.", origin="upload:d"),
        ]
    )
    store = service.store
    assert set(store.documents_under(["docs"])) == {"docs/a.txt", "docs/sub/b.txt"}  # not docs-old/
    assert set(store.documents_under(["docs/sub/", "upload:d"])) == {"docs/sub/b.txt", "upload:d"}
    # more origins than a statement takes parameters (65,535): an upload of many documents looks them up
    many = [f"upload:{n}" for n in range(70_000)] + ["upload:d", "docs-old"]
    assert set(store.documents_under(many)) == {"upload:d", "docs-old/c.txt"}
