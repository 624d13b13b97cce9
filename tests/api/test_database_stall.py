"""With QA_STORE=pgvector, a stalled database (its processes SIGSTOPped mid-run) costs a bounded wait
and a 503, never the event loop: /healthz keeps answering, and service resumes with the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.service import QAService
from qa_service.store.postgres.pool import Postgres
from tests.conftest import SEED_FILE, hash_settings, serve_in_thread
from tests.postgres_server import LocalPostgres

QUESTION = {"message": "How many troops withdrew from Kherson?"}
TIMEOUT = 2.0  # QA_DATABASE_TIMEOUT_SECONDS for this test
BOUND = 6 * TIMEOUT  # the most a request may wait on a stalled database (generous: 2 shared cores)


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A server of its own: pausing the session's would stall other tests' pools."""
    server = LocalPostgres().start()
    try:
        yield server
    finally:
        server.resume()
        server.stop()


@pytest.mark.slow
def test_a_stalled_database_gives_503_in_bounded_time_while_healthz_answers(
    tmp_path: Path, own_postgres: LocalPostgres
) -> None:
    url = own_postgres.create_database("stall")
    settings = hash_settings(tmp_path / "index").model_copy(
        update={
            "store": "pgvector",
            "database_url": SecretStr(url),
            "database_timeout_seconds": TIMEOUT,
            "rate_limit_burst": 1000,
        }
    )
    QAService(settings).index_texts([_seed()])
    try:
        with serve_in_thread(create_app(settings)) as base, httpx.Client(base_url=base, timeout=60) as http:
            first = http.post("/v1/chat", json=QUESTION)
            assert first.status_code == 200, first.text
            own_postgres.pause()
            try:
                results: list[tuple[int, float]] = []

                def ask() -> None:
                    started = time.monotonic()
                    status = http.post("/v1/chat", json=QUESTION).status_code
                    results.append((status, time.monotonic() - started))

                askers = [threading.Thread(target=ask) for _ in range(12)]  # more than the pool's connections
                for thread in askers:
                    thread.start()
                time.sleep(0.5)
                started = time.monotonic()
                health = http.get("/healthz")
                assert health.status_code == 200 and time.monotonic() - started < BOUND
                for thread in askers:
                    thread.join(BOUND + 30)
                assert len(results) == 12
                assert all(status == 503 for status, _ in results), results
                assert max(seconds for _, seconds in results) < BOUND, results
            finally:
                own_postgres.resume()
            deadline = time.monotonic() + 30
            while http.post("/v1/chat", json=QUESTION).status_code != 200:  # back with the database
                assert time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        Postgres.close_shared(url)


def _seed():  # type: ignore[no-untyped-def]
    from qa_service.indexer import TextSource

    return TextSource(source=SEED_FILE.name, text=SEED_FILE.read_text(), origin="upload:" + SEED_FILE.name)
