import pytest
from fastapi.testclient import TestClient

from qa_service.api.app import create_app
from qa_service.api.deps import get_service
from qa_service.errors import (
    DatabaseUnavailableError,
    IndexMismatchError,
    IndexNotFoundError,
    ModelLoadError,
    QAServiceError,
)
from qa_service.settings import Settings

QUESTION = "How many troops withdrew from Kherson?"


def test_chat_returns_the_answer_contract(client: TestClient) -> None:
    response = client.post("/v1/chat", json={"message": QUESTION})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "answer",
        "abstained",
        "confidence",
        "citations",
        "mode_used",
        "collection",
        "conversation_id",
        "turn",
    }
    assert body["collection"] == "default"
    assert body["mode_used"] == "extractive"
    citation = body["citations"][0]
    assert set(citation) == {"index", "document_id", "source", "text", "start", "end", "score", "location"}
    assert citation["index"] == 1 and "20,000 to 30,000" in citation["text"] and "[1]" in body["answer"]


def test_conversation_id_carries_history(client: TestClient) -> None:
    first = client.post("/v1/chat", json={"message": "Who is Mark Milley?"}).json()
    cid = first["conversation_id"]
    second = client.post("/v1/chat", json={"message": "What did he say?", "conversation_id": cid})
    assert second.status_code == 200 and second.json()["conversation_id"] == cid
    assert second.json()["turn"] == 4
    service = client.app.state.service  # type: ignore[attr-defined]
    stored = client.get(f"/v1/conversations/{cid}").json()
    assert [t["role"] for t in stored["turns"]] == ["user", "assistant", "user", "assistant"]
    assert stored["turns"][1]["citations"] == first["citations"]
    history = client.app.state.conversations.history(cid)  # type: ignore[attr-defined]
    assert service.retrieval_query("What did he say?", history[:2]) == "What did Mark Milley say?"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"message": ""}, "message"),
        ({"message": "   "}, "empty"),
        ({}, "message"),
        ({"message": "x" * 5000}, "longer than"),
        ({"message": "hi", "conversation_id": "bad id!"}, "conversation_id"),
    ],
)
def test_bad_input_gets_422_with_a_clear_message(client: TestClient, payload: dict, fragment: str) -> None:
    response = client.post("/v1/chat", json=payload)
    assert response.status_code == 422
    error = response.json()["error"]
    assert fragment in error["message"] and error["code"] in {"invalid_request", "invalid_input"}


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


def test_healthz_reports_the_index(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["documents"] == 1 and body["sentences"] > 10


class ExplodingService:
    def check_message(self, message: str) -> str:
        return message

    def ask(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")


def test_unexpected_errors_are_500_without_details(fake_settings: Settings) -> None:
    app = create_app(fake_settings, load_service=False)
    app.dependency_overrides[get_service] = lambda: ExplodingService()
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.post("/v1/chat", json={"message": QUESTION})
    assert response.status_code == 500
    assert "secret" not in response.text and response.json()["error"]["code"] == "internal_error"


@pytest.mark.parametrize(
    "error",
    [
        IndexMismatchError("The index in /srv/secret/index is inconsistent (3 vectors for 4 sentences)."),
        IndexNotFoundError("No index in /srv/secret/index; run `qa-service index PATH` first."),
        ModelLoadError("Cannot load /srv/secret/models/model.onnx"),
        DatabaseUnavailableError("The database at postgresql://qa@db.internal:5432/qa is unavailable."),
    ],
)
def test_server_errors_name_no_server_paths(api_settings: Settings, error: QAServiceError) -> None:
    app = create_app(api_settings)

    async def broken() -> None:
        raise error

    app.dependency_overrides[get_service] = broken
    with TestClient(app) as c:
        response = c.post("/v1/chat", json={"message": QUESTION})
    assert response.status_code == 503 and response.json()["error"]["code"] == error.code
    message = response.json()["error"]["message"]
    assert "/srv" not in message and "secret" not in message and "db.internal" not in message and message
