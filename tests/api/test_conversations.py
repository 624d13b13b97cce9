import time
from pathlib import Path

from fastapi.testclient import TestClient

from qa_service.contract import Turn
from qa_service.conversations import SQLiteConversationStore


def test_unknown_conversation_is_404(client: TestClient) -> None:
    response = client.get("/v1/conversations/doesnotexist")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.get("/v1/conversations/bad%20id").status_code == 422


def test_feedback_is_stored_for_an_answer(client: TestClient) -> None:
    chat = client.post("/v1/chat", json={"message": "How many troops withdrew from Kherson?"}).json()
    body = {"conversation_id": chat["conversation_id"], "turn": chat["turn"], "rating": "up", "comment": "great"}
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 201 and response.json()["status"] == "stored"
    stored = client.app.state.conversations.feedback(chat["conversation_id"])  # type: ignore[attr-defined]
    assert stored[0]["rating"] == "up" and stored[0]["comment"] == "great" and stored[0]["turn"] == chat["turn"]
    assert client.post("/v1/feedback", json={**body, "turn": 1}).status_code == 404  # a user turn
    assert client.post("/v1/feedback", json={**body, "conversation_id": "nope"}).status_code == 404
    assert client.post("/v1/feedback", json={**body, "rating": "meh"}).status_code == 422


def test_conversations_persist_and_expire(tmp_path: Path) -> None:
    store = SQLiteConversationStore(tmp_path / "state.sqlite", ttl_seconds=3600)
    store.append("c1", Turn(role="user", content="hi"))
    reopened = SQLiteConversationStore(tmp_path / "state.sqlite", ttl_seconds=3600)
    assert [t.content for t in reopened.history("c1")] == ["hi"]
    expired = SQLiteConversationStore(tmp_path / "state.sqlite", ttl_seconds=0.01)
    time.sleep(0.05)
    assert expired.get("c1") is None and expired.history("c1") == []
