"""`"mode": "generative"` through the HTTP API, against a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from qa_service.api.app import create_app
from qa_service.settings import Settings
from tests.api.conftest import sse_events
from tests.conftest import ROOT
from tests.generation.fake_openai import FakeOpenAI, Reply, fake_openai

QUESTION = "How many troops withdrew from Kherson?"


def first_source(request: dict[str, Any]) -> str:
    """A model that restates source [1] and cites it."""
    user = request["messages"][1]["content"]
    sentence = re.search(r"^\[1\] (.+)$", user, re.MULTILINE).group(1)  # type: ignore[union-attr]
    return f"{sentence.rstrip('.')} [1]."


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with fake_openai() as fake:
        yield fake


@pytest.fixture
def client(api_settings: Settings, llm: FakeOpenAI) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"llm_base_url": llm.base_url, "prompts_dir": ROOT / "prompts"})
    with TestClient(create_app(settings)) as c:
        yield c


def test_generative_answer_cites_the_sentences_it_restates(client: TestClient, llm: FakeOpenAI) -> None:
    llm.replies.append(Reply(respond=first_source))
    body = client.post("/v1/chat", json={"message": QUESTION, "mode": "generative"}).json()
    assert body["mode_used"] == "generative" and body["answer"].endswith("[1].")
    citation = body["citations"][0]
    context = client.get(
        f"/v1/documents/{citation['document_id']}/context", params={"start": citation["start"], "end": citation["end"]}
    ).json()
    assert context["sentence"] == citation["text"]
    extractive = client.post("/v1/chat", json={"message": QUESTION}).json()
    assert extractive["mode_used"] == "extractive" and len(llm.requests) == 1


def test_generative_failure_is_the_extractive_answer_not_an_error(client: TestClient, llm: FakeOpenAI) -> None:
    llm.replies.append(Reply(status=500))
    body = client.post("/v1/chat", json={"message": QUESTION, "mode": "generative"}).json()
    extractive = client.post("/v1/chat", json={"message": QUESTION}).json()
    assert body["mode_used"] == "extractive-fallback"
    assert (body["answer"], body["citations"]) == (extractive["answer"], extractive["citations"])


def test_generative_answer_streams_checked_sentences(client: TestClient, llm: FakeOpenAI) -> None:
    def reply(request: dict[str, Any]) -> str:
        claim = first_source(request)
        return f"{claim} Nothing supports this sentence. {claim}"

    llm.replies.append(Reply(respond=reply))
    response = client.post("/v1/chat", json={"message": QUESTION, "mode": "generative", "stream": True})
    events = sse_events(response.text)
    assert llm.requests[0]["stream"] is True  # tokens streamed from the model
    done = json.loads(events[-1][1])
    deltas = [json.loads(data)["delta"] for name, data in events if name == "answer"]
    assert done["mode_used"] == "generative-trimmed" and "".join(deltas) == done["answer"]
    assert len(deltas) == 2 and "Nothing supports" not in done["answer"]
    assert [name for name, _ in events][-2:] == ["citations", "done"]


def test_streamed_fallback_is_the_extractive_answer(client: TestClient, llm: FakeOpenAI) -> None:
    llm.replies.append(Reply("The answer is 42 [1]."))
    events = sse_events(client.post("/v1/chat", json={"message": QUESTION, "mode": "generative", "stream": True}).text)
    done = json.loads(events[-1][1])
    extractive = client.post("/v1/chat", json={"message": QUESTION}).json()
    assert done["mode_used"] == "extractive-fallback" and done["answer"] == extractive["answer"]
    assert "".join(json.loads(d)["delta"] for n, d in events if n == "answer") == done["answer"]


def test_generative_without_a_model_is_a_clear_422(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings)) as client:
        response = client.post("/v1/chat", json={"message": QUESTION, "mode": "generative"})
    assert response.status_code == 422 and "QA_LLM_BASE_URL" in response.json()["error"]["message"]
    with pytest.raises(ValidationError, match="QA_LLM_BASE_URL"):
        Settings(answer_mode="generative")


def test_broken_prompt_templates_stop_the_startup(api_settings: Settings, llm: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "answer_system.jinja").write_text("{{ max_sentences }}")
    (tmp_path / "answer_user.jinja").write_text("{{ question }}")
    settings = api_settings.model_copy(update={"llm_base_url": llm.base_url, "prompts_dir": tmp_path})
    with pytest.raises(Exception, match="must use sources"), TestClient(create_app(settings)):
        pass


def test_openai_clients_ask_for_generative_answers_by_model_name(client: TestClient, llm: FakeOpenAI) -> None:
    llm.replies.append(Reply(respond=first_source))
    body = {"model": "qa-service-generative", "messages": [{"role": "user", "content": QUESTION}]}
    completion = client.post("/v1/chat/completions", json=body).json()
    assert completion["mode_used"] == "generative" and completion["choices"][0]["message"]["content"].endswith("[1].")
    llm.replies.append(Reply(respond=first_source))
    events = client.post("/v1/chat/completions", json={**body, "stream": True}).text.split("\n\n")
    chunks = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert chunks[-1]["mode_used"] == "generative" and text == completion["choices"][0]["message"]["content"]
    plain = client.post("/v1/chat/completions", json={**body, "model": "gpt-4o"}).json()
    assert plain["mode_used"] == "extractive" and len(llm.requests) == 2


def test_generative_answers_past_the_concurrency_bound_get_503(api_settings: Settings, llm: FakeOpenAI) -> None:
    import threading

    import httpx

    from tests.conftest import serve_in_thread

    release, started = threading.Event(), threading.Event()

    def slow_model(request: dict[str, Any]) -> str:
        started.set()
        release.wait(30)
        return first_source(request)

    llm.replies.append(Reply(respond=slow_model))
    settings = api_settings.model_copy(
        update={"llm_base_url": llm.base_url, "prompts_dir": ROOT / "prompts", "llm_max_concurrent": 1}
    )
    generative = {"message": QUESTION, "mode": "generative"}
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        first: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: first.append(http.post("/v1/chat", json=generative)))
        worker.start()
        try:
            assert started.wait(30)
            busy = http.post("/v1/chat", json=generative)
            assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
            assert busy.json()["error"]["code"] == "generation_busy"
            streamed = http.post("/v1/chat", json={**generative, "stream": True})
            assert streamed.status_code == 503
            completion = {"model": "qa-service-generative", "messages": [{"role": "user", "content": QUESTION}]}
            assert http.post("/v1/chat/completions", json=completion).status_code == 503
            assert http.post("/v1/chat", json={"message": QUESTION}).status_code == 200  # extractive still answers
            assert http.get("/healthz").status_code == 200
        finally:
            release.set()
            worker.join(60)
        assert first[0].status_code == 200 and first[0].json()["mode_used"] == "generative"
        llm.replies.append(Reply(respond=first_source))
        assert http.post("/v1/chat", json=generative).status_code == 200  # the slot was given back
