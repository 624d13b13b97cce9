import json

from fastapi.testclient import TestClient

from qa_service.api.deps import get_service
from qa_service.store.records import Collection
from tests.api.conftest import sse_events

QUESTION = "How many troops withdrew from Kherson?"


def test_chat_streams_answer_then_citations_then_done(client: TestClient) -> None:
    with client.stream(
        "POST", "/v1/chat", json={"message": QUESTION}, headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.read().decode())
    names = [name for name, _ in events]
    assert names[0] == "answer" and names[-2:] == ["citations", "done"]
    streamed = "".join(json.loads(data)["delta"] for name, data in events if name == "answer")
    done = json.loads(events[-1][1])
    assert streamed == done["answer"] and "20,000 to 30,000" in done["citations"][0]["text"]
    assert json.loads(events[-2][1])["citations"] == done["citations"] and done["conversation_id"]


def test_stream_flag_in_body_also_streams(client: TestClient) -> None:
    response = client.post("/v1/chat", json={"message": QUESTION, "stream": True})
    assert [name for name, _ in sse_events(response.text)][-1] == "done"


class FailingService:
    def check_capacity(self, mode: object) -> None:
        pass

    def check_message(self, message: str) -> str:
        return message

    def collection(self, name: str) -> Collection:
        return Collection(name, name, True, 0.0)

    def ask(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("boom with a secret")


def test_errors_mid_stream_arrive_as_an_error_event(client: TestClient) -> None:
    client.app.dependency_overrides[get_service] = lambda: FailingService()  # type: ignore[attr-defined]
    response = client.post("/v1/chat", json={"message": QUESTION, "stream": True})
    assert response.status_code == 200
    ((name, data),) = sse_events(response.text)
    assert name == "error" and json.loads(data)["error"]["code"] == "internal_error" and "secret" not in data
