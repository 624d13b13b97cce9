"""Collections are isolated on both backends, through every channel: two teams' documents share
words but answer differently; each key and channel sees only its collection's citations, a question
only the other collection answers is refused, and one collection's uploads change nothing of another's
answers (IDF, abstention)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.settings import Settings
from tests.conftest import SEEDS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "admin-key-for-isolation-tests"
HR_TEXT = (
    "Employees receive 25 days of paid vacation per year. Unused vacation days expire at the end of March. "
    "Parental leave lasts 16 weeks at full pay. The office opens at 9 am on weekdays. "
    "Expense reports are due within 30 days of purchase."
)
ENG_TEXT = (
    "The deploy pipeline runs every 25 minutes. Production database backups are kept for 16 weeks. "
    "The on-call rotation changes every Monday at 9 am. Incidents are reviewed within 30 days in a blameless "
    "postmortem. Unused feature flags expire at the end of each quarter."
)
# (question, the collection that holds the answer, a substring of the right sentence)
QUESTIONS = [
    ("How many vacation days do employees get?", "hr", "25 days of paid vacation"),
    ("How long is parental leave?", "hr", "Parental leave lasts 16 weeks"),
    ("How long are database backups kept?", "eng", "backups are kept for 16 weeks"),
    ("How often does the deploy pipeline run?", "eng", "runs every 25 minutes"),
]
OTHER = {"hr": "eng", "eng": "hr"}


@dataclass
class Teams:
    client: TestClient
    settings: Settings
    keys: dict[str, str]  # "hr-chat", "eng-chat", "hr-manager", "admin" -> bearer secret
    documents: dict[str, set[str]]  # collection -> its document ids

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}


def _settings(backend: str, index_dir: Path, url: str | None) -> Settings:
    return Settings(
        index_dir=index_dir,
        seeds_dir=SEEDS,
        store=backend,  # type: ignore[arg-type]
        database_url=url,  # type: ignore[arg-type]
        admin_api_key=SecretStr(ADMIN),
        chat_api_key=SecretStr("legacy-chat-key-for-isolation-tests"),  # chat needs a key: nothing is public
        rate_limit_per_minute=100_000,
        rate_limit_burst=100_000,
    )


def build_teams(client: TestClient, settings: Settings) -> Teams:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    documents: dict[str, set[str]] = {}
    for name, text in (("hr", HR_TEXT), ("eng", ENG_TEXT)):
        assert client.post("/v1/collections", json={"name": name}, headers=admin).status_code == 201
        response = client.post(
            "/v1/documents", json={"source": f"{name}-handbook.txt", "text": text, "collection": name}, headers=admin
        )
        assert response.status_code == 201, response.text
        documents[name] = {response.json()["id"]}
    keys = {"admin": ADMIN}
    for label, role, scope in (
        ("hr-chat", "chat", ["hr"]),
        ("eng-chat", "chat", ["eng"]),
        ("hr-manager", "manager", ["hr"]),
    ):
        response = client.post("/v1/keys", json={"role": role, "collections": scope, "name": label}, headers=admin)
        assert response.status_code == 201, response.text
        keys[label] = response.json()["key"]
    return Teams(client, settings, keys, documents)


@pytest.fixture(scope="module", params=["faiss", "pgvector"])
def teams(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Teams]:
    url = None
    if request.param == "pgvector":
        url = request.getfixturevalue("postgres").create_database("iso_" + uuid.uuid4().hex[:10])
    settings = _settings(request.param, tmp_path_factory.mktemp("teams") / "index", url)
    with TestClient(create_app(settings)) as client:
        yield build_teams(client, settings)
    if url is not None:
        from qa_service.store.postgres.pool import Postgres

        Postgres.close_shared(url)


def _ask_json(teams: Teams, key: str, collection: str, question: str) -> tuple[int, dict[str, Any]]:
    r = teams.client.post("/v1/chat", json={"message": question, "collection": collection}, headers=teams.headers(key))
    return r.status_code, r.json()


def _ask_stream(teams: Teams, key: str, collection: str, question: str) -> tuple[int, dict[str, Any]]:
    r = teams.client.post(
        "/v1/chat", json={"message": question, "collection": collection, "stream": True}, headers=teams.headers(key)
    )
    if r.status_code != 200:
        return r.status_code, r.json()
    events = [json.loads(line[len("data: ") :]) for line in r.text.splitlines() if line.startswith("data: ")]
    return 200, events[-1]  # the `done` event carries the whole answer


def _ask_openai(teams: Teams, key: str, collection: str, question: str) -> tuple[int, dict[str, Any]]:
    body = {"model": f"qa-service/{collection}", "messages": [{"role": "user", "content": question}]}
    r = teams.client.post("/v1/chat/completions", json=body, headers=teams.headers(key))
    return r.status_code, r.json()


def _ask_openai_stream(teams: Teams, key: str, collection: str, question: str) -> tuple[int, dict[str, Any]]:
    body = {
        "model": "qa-service",
        "collection": collection,
        "stream": True,
        "messages": [{"role": "user", "content": question}],
    }
    r = teams.client.post("/v1/chat/completions", json=body, headers=teams.headers(key))
    if r.status_code != 200:
        return r.status_code, r.json()
    chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    return 200, chunks[-1]  # the last chunk carries citations, abstained


CHANNELS = {"json": _ask_json, "stream": _ask_stream, "openai": _ask_openai, "openai-stream": _ask_openai_stream}


@pytest.mark.parametrize("channel", sorted(CHANNELS))
@pytest.mark.parametrize("key", ["hr-chat", "eng-chat", "hr-manager", "admin"])
def test_each_key_and_channel_sees_only_its_collection(teams: Teams, channel: str, key: str) -> None:
    ask = CHANNELS[channel]
    own = {"hr-chat": ["hr"], "eng-chat": ["eng"], "hr-manager": ["hr"], "admin": ["hr", "eng"]}[key]
    for collection in ("hr", "eng"):
        for question, holder, expected in QUESTIONS:
            status, body = ask(teams, key, collection, question)
            if collection not in own:
                assert status == 403, (key, collection, body)
                continue
            assert status == 200, body
            cited = {c["document_id"] for c in body["citations"]}
            assert cited <= teams.documents[collection], (question, collection, body)
            if holder == collection:
                assert not body["abstained"] and expected in body["citations"][0]["text"], (question, body)
            else:
                assert body["abstained"], (question, collection, body)  # only the other collection answers it


def test_one_collections_uploads_change_nothing_of_anothers_answers(teams: Teams) -> None:
    question = QUESTIONS[0][0]
    before = _ask_json(teams, "admin", "hr", question)[1]
    admin = teams.headers("admin")
    for n in range(40):  # bulk uploads to eng, with HR's words in them
        text = f"Vacation policy draft {n}: engineers on call receive {n} extra days of paid vacation per year."
        r = teams.client.post(
            "/v1/documents", json={"source": f"bulk-{n}.txt", "text": text, "collection": "eng"}, headers=admin
        )
        assert r.status_code == 201
    after = _ask_json(teams, "admin", "hr", question)[1]
    assert after["confidence"] == before["confidence"]
    assert [(c["document_id"], c["start"], c["score"]) for c in after["citations"]] == [
        (c["document_id"], c["start"], c["score"]) for c in before["citations"]
    ]
    r = teams.client.get("/v1/documents", params={"collection": "eng"}, headers=admin)
    ids = [d["id"] for d in r.json()["documents"] if d["source"].startswith("bulk-")]
    assert len(ids) == 40
    for doc_id in ids:
        assert (
            teams.client.delete(f"/v1/documents/{doc_id}", params={"collection": "eng"}, headers=admin).status_code
            == 204
        )


def test_conversations_and_feedback_stay_in_their_collection(teams: Teams) -> None:
    status, first = _ask_json(teams, "admin", "hr", QUESTIONS[1][0])
    assert status == 200
    # the same conversation id sent with another collection starts a new conversation there
    r = teams.client.post(
        "/v1/chat",
        json={"message": "How long?", "collection": "eng", "conversation_id": first["conversation_id"]},
        headers=teams.headers("admin"),
    )
    assert r.status_code == 200 and r.json()["conversation_id"] != first["conversation_id"]
    # another team's key can neither read the conversation nor rate its answers
    conversation = f"/v1/conversations/{first['conversation_id']}"
    assert teams.client.get(conversation, headers=teams.headers("eng-chat")).status_code == 404
    assert teams.client.get(conversation, headers=teams.headers("hr-chat")).status_code == 200
    rating = {"conversation_id": first["conversation_id"], "turn": first["turn"], "rating": "up"}
    assert teams.client.post("/v1/feedback", json=rating, headers=teams.headers("eng-chat")).status_code == 404
    assert teams.client.post("/v1/feedback", json=rating, headers=teams.headers("hr-chat")).status_code == 201
