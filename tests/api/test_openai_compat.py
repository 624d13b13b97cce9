"""The official `openai` SDK, unchanged, against the app on loopback."""

import openai
import pytest
from fastapi.testclient import TestClient

QUESTION = "How many troops withdrew from Kherson?"


@pytest.fixture
def sdk(live_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key="unused-when-chat-is-public", max_retries=0)


def test_sdk_completion_keeps_markers_and_citations(sdk: openai.OpenAI) -> None:
    response = sdk.chat.completions.create(model="my-model", messages=[{"role": "user", "content": QUESTION}])
    assert response.model == "my-model" and response.object == "chat.completion"
    message = response.choices[0].message
    assert message.role == "assistant" and "[1]" in (message.content or "")
    citations = message.model_extra["citations"]  # type: ignore[index]
    assert "20,000 to 30,000" in citations[0]["text"] and citations[0]["index"] == 1
    assert response.model_extra["citations"] == citations  # type: ignore[index]
    assert response.usage is not None and response.usage.total_tokens > 0


def test_sdk_streaming_ends_with_citations(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "20,000 to 30,000 troops" in text and text.endswith("[1]")
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert "20,000 to 30,000" in last.model_extra["citations"][0]["text"]  # type: ignore[index]


def test_sdk_follow_up_uses_earlier_user_messages(sdk: openai.OpenAI) -> None:
    response = sdk.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Who is Mark Milley?"},
            {"role": "assistant", "content": "US Army Chief of Staff."},
            {"role": "user", "content": "What did he say about negotiations?"},
        ],
    )
    assert "negotiations" in response.choices[0].message.content  # type: ignore[operator]


def test_completion_without_a_user_question_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", json={"model": "m", "messages": [{"role": "system", "content": "x"}]}
    )
    assert response.status_code == 422 and "user message" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("model", "collection", "expected"),
    [
        ("qa-service", None, "default"),
        ("qa-service/hr", None, "hr"),
        ("qa-service-generative/hr", "hr", "hr"),
        ("qa-service-extractive", "eng", "eng"),
        ("gpt-4o", None, "default"),  # a client that cannot change the name asks `default`
        ("gpt-4o", "faq", "faq"),
    ],
)
def test_the_model_name_or_field_names_the_collection(model: str, collection: str | None, expected: str) -> None:
    from qa_service.api.routes.openai_compat import _mode, target_collection
    from qa_service.api.schemas import CompletionRequest

    body = CompletionRequest(model=model, collection=collection, messages=[{"role": "user", "content": "Q?"}])
    assert target_collection(body) == expected
    assert _mode(model) == {"qa-service-generative": "generative", "qa-service-extractive": "extractive"}.get(
        model.partition("/")[0]
    )


@pytest.mark.parametrize(
    ("model", "collection", "message"),
    [("qa-service/HR", None, "names no valid collection"), ("qa-service/hr", "eng", "send one of them")],
)
def test_a_bad_or_conflicting_collection_is_refused(model: str, collection: str | None, message: str) -> None:
    from qa_service.api.routes.openai_compat import target_collection
    from qa_service.api.schemas import CompletionRequest
    from qa_service.errors import InvalidInputError

    body = CompletionRequest(model=model, collection=collection, messages=[{"role": "user", "content": "Q?"}])
    with pytest.raises(InvalidInputError, match=message):
        target_collection(body)
