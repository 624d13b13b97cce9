"""Two API replicas (two `qa-service serve` processes) over one PostgreSQL + pgvector database."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from qa_service.benchmark.servers import free_port, running
from tests.store.test_contract import DOCS

pytestmark = pytest.mark.integration
ADMIN = "replica-admin-key"


def call(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_two_replicas_share_documents_conversations_and_indexing(tmp_path: Path, database_url: str) -> None:
    env = {
        "QA_STORE": "pgvector",
        "QA_DATABASE_URL": database_url,
        "QA_EMBEDDING_MODEL": "hash:64",
        "QA_ABSTENTION__THRESHOLD": "0",
        "QA_ADMIN_API_KEY": ADMIN,
        "QA_RATE_LIMIT_BURST": "1000",
        "QA_LOG_JSON": "false",
    }
    with ExitStack() as stack:
        bases = []
        for name in ("a", "b"):
            port = free_port()
            command = [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(port)]
            server = stack.enter_context(
                running(
                    command,
                    port,
                    "/readyz",
                    tmp_path / f"{name}.log",
                    env={**env, "QA_INDEX_DIR": str(tmp_path / name)},
                    timeout=180,
                )
            )
            bases.append(server.base_url)
        a, b = bases

        # A document uploaded through one replica is answered from by the other.
        status, info = call(a, "POST", "/v1/documents", {"source": "bridge.txt", "text": DOCS["bridge.txt"]})
        assert status == 201 and info["sentences"] == 3
        status, answer = call(b, "POST", "/v1/chat", {"message": "When did the Golden Gate Bridge open?"})
        assert status == 200 and answer["citations"][0]["text"] == "The Golden Gate Bridge opened in 1937."
        cited = answer["citations"][0]
        assert DOCS["bridge.txt"][cited["start"] : cited["end"]] == cited["text"]

        # A conversation started on B continues on A: the follow-up is resolved with B's turn.
        conversation = answer["conversation_id"]
        status, follow = call(
            a, "POST", "/v1/chat", {"message": "How long is its main span?", "conversation_id": conversation}
        )
        assert status == 200 and follow["turn"] == 4 and follow["conversation_id"] == conversation
        assert follow["citations"][0]["text"] == "Its main span is 1,280 metres long."
        status, stored = call(b, "GET", f"/v1/conversations/{conversation}")
        assert status == 200 and [t["role"] for t in stored["turns"]] == ["user", "assistant"] * 2
        assert call(b, "POST", "/v1/feedback", {"conversation_id": conversation, "turn": 4, "rating": "up"})[0] == 201

        # Concurrent ingest through both replicas, the same documents on each: nothing lost or doubled.
        uploads = [(base, name, text) for name, text in DOCS.items() for base in (a, b)] * 2
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(lambda u: call(u[0], "POST", "/v1/documents", {"source": u[1], "text": u[2]}), uploads)
            )
        assert {status for status, _ in results} == {201}
        for base in (a, b):
            status, health = call(base, "GET", "/healthz")
            assert status == 200 and (health["documents"], health["sentences"]) == (3, 9)
            status, listing = call(base, "GET", "/v1/documents")
            assert sorted(d["source"] for d in listing["documents"]) == sorted(DOCS)

        # A delete through A is seen by B's next answer; both report the same generation.
        volcano = next(d["id"] for d in listing["documents"] if d["source"] == "volcano.txt")
        assert call(a, "DELETE", f"/v1/documents/{volcano}")[0] == 204
        status, answer = call(b, "POST", "/v1/chat", {"message": "When did Mount Etna erupt?"})
        assert status == 200 and all(c["source"] != "volcano.txt" for c in answer["citations"])
        assert call(a, "GET", "/readyz")[1]["generation"] == call(b, "GET", "/readyz")[1]["generation"]
