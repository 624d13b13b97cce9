"""Churn against a real `qa-service serve`: answers while documents are uploaded, replaced and deleted,
then SIGKILLs (one while the writer is busy, one inside an upload's write) and restarts."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from qa_service.benchmark.churn import Churn, Server, verify_after_restart
from qa_service.service import QAService
from tests.conftest import hash_settings

ADMIN = "churn-admin-key"
ENV = {
    "QA_EMBEDDING_MODEL": "hash:64",
    "QA_ADMIN_API_KEY": ADMIN,
    "QA_RATE_LIMIT_BURST": "1000000",
    "QA_ABSTENTION__THRESHOLD": "0",  # calibrated for the real model: with the hashing encoder, always answer
    "QA_LOG_JSON": "false",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fixed_documents(base: str) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    listed = httpx.get(f"{base}/v1/documents", headers=auth).json()["documents"]
    return {d["id"]: httpx.get(f"{base}/v1/documents/{d['id']}", headers=auth).json()["text"] for d in listed}


@pytest.mark.slow
def test_churn_then_kills_and_restarts(tmp_path: Path, seeds_copy: Path) -> None:
    index_dir = tmp_path / "index"
    QAService(hash_settings(index_dir)).index_paths([seeds_copy])
    server = Server(index_dir, free_port(), ENV).start()
    try:
        churn = Churn(server.base, ADMIN, fixed_documents(server.base))
        runner = threading.Thread(target=churn.run, args=(3600,), daemon=True)
        runner.start()
        churn.stop.wait(25)
        churn.killing.set()
        server.kill()  # SIGKILL while clients ask and the writer uploads
        churn.stop.set()
        runner.join(120)
        stats = churn.stats
        print(f"churn: {stats.requests} requests, {stats.uploads} uploads acknowledged")  # shown with -s / on failure
        assert stats.server_errors == [] and stats.bad_citations == [] and stats.other_failures == []
        assert stats.requests > 50 and stats.uploads > 5

        server.start()
        assert verify_after_restart(server.base, ADMIN, churn.ledger) == []
        server.stop()

        server.start(failpoint="before_commit")  # the next write SIGKILLs the server inside the upload
        churn.killing.clear()
        with httpx.Client(base_url=server.base, timeout=60) as http:
            churn.upload(http, 0, 10_000)
        assert server.process is not None and server.process.wait(timeout=30) == -9
        server.start()
        assert verify_after_restart(server.base, ADMIN, churn.ledger) == []
        followed = Churn(server.base, ADMIN, churn.fixed)
        followed.ledger = churn.ledger
        after = followed.run(3)  # still answering, from what is there
        assert after.server_errors == [] and after.bad_citations == [] and after.requests > 0
    finally:
        server.stop()
