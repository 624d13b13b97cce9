"""Indexes from before collections open in place as collection `default` and answer the same; an
index of a newer version refuses to open; a collection delete killed midway leaves it whole or gone.

The embedded fixture (tests/store/fixtures/legacy-v2/) was built by qa-service at commit 44d09ba
(schema 2), and its `expected.json` holds that code's answers (see `_built_by` there). The PostgreSQL
legacy layout is made in-test: schema pg-1 was today's tables in `public` with `qa_meta`
schema_version `pg-1` and no `qa_collections` (the only differences from pg-2).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from qa_service.errors import IndexMismatchError
from qa_service.indexer import TextSource
from qa_service.service import QAService
from qa_service.settings import Settings
from tests.store.test_collections import ENG, HR, collection_settings, holdings, sources
from tests.store.test_contract import backend  # noqa: F401  (the fixture: faiss and pgvector)
from tests.store.test_pg_lexical import make_pg2

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-v2"


def _answer(service: QAService, question: str) -> dict[str, object]:
    """The answer less its citations' ranking scores: since schema 4 the BM25 features come from
    tantivy, whose BM25 weighs terms a little differently from FTS5's (same sentences, same text,
    same confidence; the ranker's score moves)."""
    answer = json.loads(service.ask(question).model_dump_json())
    for citation in answer["citations"]:
        citation.pop("score")
    return answer


def _expected(answers: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    for answer in answers.values():
        for citation in answer["citations"]:  # type: ignore[attr-defined]
            citation.pop("score")
    return answers


def test_an_index_built_before_collections_opens_as_default_and_answers_the_same(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(FIXTURE / "index", index_dir)
    expected = _expected(json.loads((FIXTURE / "expected.json").read_text())["answers"])
    legacy_ids = {r[0] for r in sqlite3.connect(index_dir / "store.sqlite").execute("SELECT id FROM documents")}

    service = QAService(Settings(index_dir=index_dir, embedding_model="hash:64"), create_index=False)
    assert [(c.id, c.name) for c in service.collections()] == [("default", "default")]
    assert {d.id for d in service.documents()} == legacy_ids
    for question, answer in expected.items():
        assert _answer(service, question) == answer
    assert service.store.manifest().schema_version == "4"
    assert json.loads((index_dir / "manifest.json").read_text())["schema_version"] == "4"
    assert sorted(p.name for p in index_dir.iterdir()) == [
        "manifest.json",
        "passages-1.faiss",
        "passages-1.tantivy",
        "sentences-1.faiss",
        "sentences-1.tantivy",
        "store.sqlite",
        *(["store.sqlite-shm", "store.sqlite-wal"] if (index_dir / "store.sqlite-wal").exists() else []),
    ]  # upgraded in place: no file moved, the keyword index of generation 1 built beside it
    service.create_collection("hr")  # and it takes new collections beside it
    service.index_texts(sources(HR), collection="hr")
    for question, answer in expected.items():
        assert _answer(service, question) == answer
    service.close()

    reopened = QAService(Settings(index_dir=index_dir, embedding_model="hash:64"), create_index=False)
    assert [c.name for c in reopened.collections()] == ["default", "hr"]
    for question, answer in expected.items():
        assert _answer(reopened, question) == answer
    reopened.close()


def test_an_embedded_index_of_a_newer_version_refuses_to_open(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(FIXTURE / "index", index_dir)
    with sqlite3.connect(index_dir / "store.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    with pytest.raises(IndexMismatchError, match="newer qa-service"):
        QAService(Settings(index_dir=index_dir, embedding_model="hash:64"), create_index=False)


def _make_pg_legacy(url: str) -> None:
    """Today's pg-1 layout from a pg-3 database: no catalog, no BM25 vectors, schema_version pg-1."""
    make_pg2(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE public.qa_collections")
        conn.execute("DROP SEQUENCE public.qa_collection_ids")
        conn.execute("UPDATE public.qa_meta SET value = 'pg-1' WHERE key = 'schema_version'")


def test_a_postgres_index_built_before_collections_is_upgraded_in_place(tmp_path: Path, database_url: str) -> None:
    settings = collection_settings("pgvector", tmp_path, database_url)
    service = QAService(settings)
    service.index_texts(sources({**HR, **ENG}))
    questions = ["How many days of paid vacation does an employee get?", "How do I restart the payments database?"]
    answers = {q: _answer(service, q) for q in questions}
    counts = holdings(service.store)
    service.close()
    _make_pg_legacy(database_url)

    upgraded = QAService(settings, create_index=False)
    assert [(c.id, c.name) for c in upgraded.collections()] == [("default", "default")]
    assert {q: _answer(upgraded, q) for q in questions} == answers
    assert holdings(upgraded.store) == counts
    assert upgraded.store.manifest().schema_version == "pg-3"  # pg-1 -> pg-2 (catalog) -> pg-3 (BM25)
    upgraded.create_collection("hr")
    upgraded.index_texts(sources(HR), collection="hr")
    assert {q: _answer(upgraded, q) for q in questions} == answers
    upgraded.close()


def test_a_postgres_index_of_a_newer_version_refuses_to_open(tmp_path: Path, database_url: str) -> None:
    settings = collection_settings("pgvector", tmp_path, database_url)
    QAService(settings).close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE public.qa_meta SET value = 'pg-4' WHERE key = 'schema_version'")
    with pytest.raises(IndexMismatchError, match="newer qa-service"):
        QAService(settings, create_index=False)


# --- a delete killed midway --------------------------------------------------------------------------
def _delete_in_subprocess(settings: Settings, name: str, failpoint: str) -> int:
    env = {
        **os.environ,
        "QA_EMBEDDING_MODEL": "hash:64",
        "QA_INDEX_DIR": str(settings.index_dir),
        "QA_STORE": settings.store,
        "QA_FAILPOINT": failpoint,
    }
    if settings.database_url is not None:
        env["QA_DATABASE_URL"] = settings.database_url.get_secret_value()
    proc = subprocess.run(
        [sys.executable, "-m", "qa_service.cli", "collections", "delete", name],
        env=env,
        capture_output=True,
        timeout=120,
    )
    return proc.returncode


@pytest.mark.parametrize("failpoint", ["collection_delete_before_commit", "collection_delete_after_commit"])
def test_a_delete_killed_midway_leaves_the_collection_whole_or_gone(
    backend: str,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
    failpoint: str,
) -> None:
    url = request.getfixturevalue("database_url") if backend == "pgvector" else None
    settings = collection_settings(backend, tmp_path, url)
    service = QAService(settings)
    for name, docs in (("hr", HR), ("eng", ENG)):
        service.create_collection(name)
        service.index_texts(sources(docs), collection=name)
    service.index_texts([TextSource(source="w.txt", text="Welcome to the team.", origin="t:w")])
    before = {name: holdings(service.store_of(name)) for name in ("default", "hr", "eng")}
    eng_id = service.collection("eng").id
    service.close()

    assert _delete_in_subprocess(settings, "eng", failpoint) == -signal.SIGKILL
    if backend == "faiss":  # killed before (or just after) the commit: its files are all still there
        assert (settings.index_dir / "collections" / eng_id / "store.sqlite").exists()

    reopened = QAService(settings)
    names = [c.name for c in reopened.collections()]
    if failpoint == "collection_delete_before_commit":  # whole
        assert names == ["default", "hr", "eng"]
        assert holdings(reopened.store_of("eng")) == before["eng"]
        assert reopened.ask("How do I restart the payments database?", collection="eng").citations
    else:  # gone (embedded: its directory is removed on opening; PostgreSQL: dropped in the transaction)
        assert names == ["default", "hr"]
        assert not (settings.index_dir / "collections" / eng_id).exists()
        if url is not None:
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT to_regnamespace(%s)", (f"qa_c_{eng_id}",)).fetchone() == (None,)
    for name in ("default", "hr"):
        assert holdings(reopened.store_of(name)) == before[name]
    reopened.close()
