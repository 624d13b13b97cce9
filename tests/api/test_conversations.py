import time
from pathlib import Path

import pytest
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


def test_feedback_reads_the_conversation_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    chat = client.post("/v1/chat", json={"message": "How many troops withdrew from Kherson?"}).json()
    store = client.app.state.conversations  # type: ignore[attr-defined]
    reads: list[tuple[object, ...]] = []
    read = store.get
    monkeypatch.setattr(store, "get", lambda *args: reads.append(args) or read(*args))
    body = {"conversation_id": chat["conversation_id"], "turn": chat["turn"], "rating": "down", "comment": None}
    assert client.post("/v1/feedback", json=body).status_code == 201
    assert len(reads) == 1 and store.feedback(chat["conversation_id"])[0]["rating"] == "down"


def test_conversations_persist_and_expire(tmp_path: Path) -> None:
    store = SQLiteConversationStore(tmp_path / "state.sqlite", ttl_seconds=3600)
    store.append("c1", Turn(role="user", content="hi"))
    reopened = SQLiteConversationStore(tmp_path / "state.sqlite", ttl_seconds=3600)
    assert [t.content for t in reopened.history("c1")] == ["hi"]
    expired = SQLiteConversationStore(tmp_path / "state.sqlite", ttl_seconds=0.01)
    time.sleep(0.05)
    assert expired.get("c1") is None and expired.history("c1") == []


def test_slack_threads_are_neither_readable_nor_writable_over_http(client: TestClient) -> None:
    conversations = client.app.state.conversations  # type: ignore[attr-defined]
    thread = "slack-D0PRIVATE-1700000000_000100"
    conversations.append(thread, Turn(role="user", content="Salary of Bob?"), channel="slack")
    assert client.get(f"/v1/conversations/{thread}").status_code == 404
    response = client.post(
        "/v1/chat", json={"message": "How many troops withdrew from Kherson?", "conversation_id": thread}
    )
    assert response.status_code == 200 and response.json()["conversation_id"] != thread
    assert [t.content for t in conversations.history(thread, channel="slack")] == ["Salary of Bob?"]


def test_web_conversation_ids_are_minted_by_the_server(client: TestClient) -> None:
    chosen = client.post("/v1/chat", json={"message": "How many troops withdrew?", "conversation_id": "guessable"})
    minted = chosen.json()["conversation_id"]
    assert minted != "guessable" and len(minted) == 32
    assert client.get("/v1/conversations/guessable").status_code == 404
    again = client.post("/v1/chat", json={"message": "And from where?", "conversation_id": minted}).json()
    assert again["conversation_id"] == minted and again["turn"] == 4


def test_openai_completions_store_no_conversation(client: TestClient) -> None:
    import sqlite3

    messages = [{"role": "user", "content": "How many troops withdrew from Kherson?"}]
    assert client.post("/v1/chat/completions", json={"model": "m", "messages": messages}).status_code == 200
    stream = client.post("/v1/chat/completions", json={"model": "m", "messages": messages, "stream": True})
    assert stream.status_code == 200 and "[DONE]" in stream.text
    path = client.app.state.settings.index_dir / "state.sqlite"  # type: ignore[attr-defined]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0


def test_state_from_before_channels_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as conn:  # the schema before conversations had a channel
        conn.executescript(
            "CREATE TABLE conversations (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL);"
            "CREATE TABLE turns (conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
            " turn INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, answer TEXT, created_at REAL NOT NULL,"
            " PRIMARY KEY (conversation_id, turn));"
        )
        now = time.time()
        for cid, content in (("slack-C1-1700000000_000100", "Private?"), ("abc123", "Public?")):
            conn.execute("INSERT INTO conversations VALUES (?, ?, ?)", (cid, now, now))
            conn.execute("INSERT INTO turns VALUES (?, 1, 'user', ?, NULL, ?)", (cid, content, now))
    store = SQLiteConversationStore(path)
    assert store.get("slack-C1-1700000000_000100") is None
    assert [t.content for t in store.history("slack-C1-1700000000_000100", channel="slack")] == ["Private?"]
    assert [t.content for t in store.history("abc123")] == ["Public?"]
