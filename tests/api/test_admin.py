"""The admin page and its endpoints: strict CSP, the admin key, and reports fed by every chat channel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.settings import AbstentionModel, Settings
from tests.api.conftest import ADMIN, ADMIN_HEADERS

REPORTS = ["analytics", "questions", "gaps", "reviews"]


def test_the_page_is_served_with_a_strict_csp(client: TestClient) -> None:
    page = client.get("/admin")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in s for s in scripts)  # no inline script
    assert "<style" not in html and " style=" not in html and re.search(r"\son\w+=", html) is None
    assert client.get("/admin.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/admin.css").headers["content-type"].startswith("text/css")
    assert "innerHTML" not in client.get("/admin.js").text  # server text goes in as text


@pytest.mark.parametrize("report", REPORTS)
def test_reports_need_the_admin_key(client: TestClient, report: str) -> None:
    assert client.get(f"/v1/admin/{report}").status_code == 401
    wrong = client.get(f"/v1/admin/{report}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert client.get(f"/v1/admin/{report}", headers=ADMIN_HEADERS).status_code == 200


def test_reports_are_off_without_an_admin_key(fake_settings: Settings) -> None:
    with TestClient(create_app(fake_settings)) as c:
        response = c.get("/v1/admin/analytics", headers=ADMIN_HEADERS)
    assert response.status_code == 403 and "QA_ADMIN_API_KEY" in response.json()["error"]["message"]


def test_every_chat_channel_is_counted_and_rated(client: TestClient) -> None:
    chat = client.post("/v1/chat", json={"message": "How many troops withdrew from Kherson?"}).json()
    client.post("/v1/chat", json={"message": "Who is Mark Milley?", "stream": True})
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Where is Kherson?"}]})
    client.post(
        "/v1/feedback",
        json={"conversation_id": chat["conversation_id"], "turn": chat["turn"], "rating": "down", "comment": "old"},
    )
    report = client.get("/v1/admin/analytics?days=7&utc_offset_minutes=60", headers=ADMIN_HEADERS).json()
    assert (report["questions"], report["abstained"], report["down"], report["up"]) == (3, 0, 1, 0)
    assert len(report["days"]) == 7 and report["days"][-1]["questions"] == 3
    assert report["p50_ms"] > 0 and report["p95_ms"] >= report["p50_ms"] and report["abstention_rate"] == 0.0
    recent = client.get("/v1/admin/questions?limit=2", headers=ADMIN_HEADERS).json()["questions"]
    assert [q["question"] for q in recent] == ["Where is Kherson?", "Who is Mark Milley?"]
    [review] = client.get("/v1/admin/reviews", headers=ADMIN_HEADERS).json()["reviews"]
    assert review["question"] == "How many troops withdrew from Kherson?" and review["comment"] == "old"
    assert review["citations"] == chat["citations"] and review["answer"] == chat["answer"]


@pytest.mark.parametrize("query", ["days=0", "days=400", "utc_offset_minutes=900", "limit=0", "limit=1000"])
def test_bad_report_parameters_are_422(client: TestClient, query: str) -> None:
    response = client.get(f"/v1/admin/questions?{query}", headers=ADMIN_HEADERS)
    assert response.status_code == 422 and response.json()["error"]["message"]


@pytest.fixture
def refusing_client(api_settings: Settings) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"abstention": AbstentionModel(threshold=1.5)})  # refuses everything
    with TestClient(create_app(settings)) as c:
        yield c


def test_refused_questions_are_grouped_as_content_gaps(refusing_client: TestClient) -> None:
    for question in ["What is the parental leave policy?", "what is the parental leave policy", "Parking?"]:
        assert refusing_client.post("/v1/chat", json={"message": question}).json()["abstained"]
    groups = refusing_client.get("/v1/admin/gaps", headers=ADMIN_HEADERS).json()["groups"]
    assert groups[0]["count"] == 2 and groups[0]["question"].lower().startswith("what is the parental leave")
    assert {g["question"] for g in groups[1:]} == {"Parking?"}
    analytics = refusing_client.get("/v1/admin/analytics", headers=ADMIN_HEADERS).json()
    assert analytics["abstention_rate"] == 1.0


def test_report_bodies_carry_question_text_unchanged(client: TestClient) -> None:
    evil = '<img src=x onerror="alert(1)"> Kherson?'
    client.post("/v1/chat", json={"message": evil})
    body = client.get("/v1/admin/questions", headers={"Authorization": f"Bearer {ADMIN}"})
    assert body.headers["content-type"] == "application/json"
    assert json.loads(body.text)["questions"][0]["question"] == evil


def test_admin_key_does_not_open_reports_to_the_chat_key(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"chat_api_key": SecretStr("chat-only")})
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/admin/analytics", headers={"Authorization": "Bearer chat-only"}).status_code == 401
