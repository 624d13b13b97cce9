"""Every message that enters is bounded: the current one and the history, on every channel."""

from fastapi.testclient import TestClient

from qa_service.lexical import _content_terms, content_terms
from qa_service.store.embedded.lexical import query_terms
from qa_service.store.keywords import MAX_QUERY_TERMS, keyword_terms

QUESTION = "How many troops withdrew from Kherson?"


def _completion(client: TestClient, messages: list[dict[str, str]]) -> tuple[int, dict]:
    response = client.post("/v1/chat/completions", json={"model": "m", "messages": messages})
    return response.status_code, response.json()


def test_a_padded_message_is_stored_stripped(client: TestClient) -> None:
    body = client.post("/v1/chat", json={"message": " " * 50_000 + QUESTION + "\n" * 1000}).json()
    stored = client.get(f"/v1/conversations/{body['conversation_id']}").json()
    assert stored["turns"][0]["content"] == QUESTION


def test_an_over_long_earlier_message_is_422(client: TestClient) -> None:
    status, body = _completion(
        client, [{"role": "user", "content": "troops " * 1000}, {"role": "user", "content": QUESTION}]
    )
    assert status == 422 and "longer than" in body["error"]["message"]


def test_too_many_history_messages_is_422(client: TestClient) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    history = [{"role": "user", "content": "Kherson?"}] * (settings.max_history_turns + 1)
    status, body = _completion(client, [*history, {"role": "user", "content": QUESTION}])
    assert status == 422 and "messages" in body["error"]["message"]


def test_too_much_history_text_is_422(client: TestClient) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    each = settings.max_message_chars - 10
    turns = settings.max_history_chars // each + 1
    assert turns <= settings.max_history_turns
    history = [{"role": "assistant", "content": "x" * each}] * turns
    status, body = _completion(client, [*history, {"role": "user", "content": QUESTION}])
    assert status == 422 and "characters" in body["error"]["message"]


def test_keyword_queries_are_bounded_in_terms() -> None:
    text = " ".join(f"word{n}" for n in range(10_000))
    assert len(keyword_terms(text)) == MAX_QUERY_TERMS
    assert len(query_terms(text)) == MAX_QUERY_TERMS


def test_the_retrieval_query_of_a_long_history_is_bounded(client: TestClient) -> None:
    from qa_service.contract import Turn

    service = client.app.state.service  # type: ignore[attr-defined]
    earlier = [Turn(role="user", content=" ".join(f"w{n}x{k}" for k in range(5000))) for n in range(50)]
    query = service.retrieval_query("and them?", earlier)
    limit = service.settings.max_message_chars * (service.settings.history_turns + 1) + 10
    assert len(query) <= limit


def test_the_terms_cache_keeps_no_long_keys() -> None:
    long_text = "troops " * 5000 + "kherson"
    before = _content_terms.cache_info().currsize
    assert content_terms(long_text) == {"troop", "kherson"}
    assert _content_terms.cache_info().currsize == before
