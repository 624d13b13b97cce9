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
from tests.slack.conftest import SECRET as SLACK_SECRET
from tests.slack.conftest import FakeSlack, event_body, running_fake_slack, signed
from tests.web.conftest import chromium

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
    slack: FakeSlack | None = None

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}


def _settings(backend: str, index_dir: Path, url: str | None, slack_url: str) -> Settings:
    return Settings(
        slack_bot_token=SecretStr("xoxb-test"),
        slack_signing_secret=SecretStr(SLACK_SECRET),
        slack_api_url=slack_url,
        slack_default_collection="",  # unmapped channels are not answered
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
    with running_fake_slack() as slack:
        settings = _settings(request.param, tmp_path_factory.mktemp("teams") / "index", url, slack.url)
        with TestClient(create_app(settings)) as client:
            teams = build_teams(client, settings)
            teams.slack = slack
            yield teams
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


# --- Slack: signed events in channels mapped to collections through the API ---------------------------
def test_slack_channels_answer_from_the_collection_they_are_mapped_to(teams: Teams) -> None:
    from qa_service.slack.blocks import ABSTAIN_TEXT
    from qa_service.slack.bot import UNMAPPED

    assert teams.slack is not None
    admin = teams.headers("admin")
    channels = {"CHR": "hr", "CENG": "eng"}
    for channel, collection in channels.items():
        r = teams.client.put(f"/v1/slack/channels/{channel}", json={"collection": collection}, headers=admin)
        assert r.status_code == 200, r.text
    manager = teams.client.put(
        "/v1/slack/channels/CHR", json={"collection": "eng"}, headers=teams.headers("hr-manager")
    )
    assert manager.status_code == 403  # mapping channels is an admin's
    listed = teams.client.get("/v1/slack/channels", headers=admin).json()["channels"]
    assert {(m["channel"], m["collection"]) for m in listed} >= set(channels.items())
    sent: list[tuple[str, str, str]] = []  # (ts, channel, question)
    before = len(teams.slack.posted("chat.postMessage"))
    for n, (channel, (question, _, _)) in enumerate((c, q) for c in [*channels, "COTHER"] for q in QUESTIONS):
        ts = f"1700000{n:03d}.000100"
        event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {question}", "ts": ts, "channel": channel}
        body = event_body(event, event_id="Ev" + uuid.uuid4().hex)
        r = teams.client.post(
            "/slack/events",
            content=body,
            headers={**signed(body, secret=SLACK_SECRET), "content-type": "application/json"},
        )
        assert r.status_code == 200
        sent.append((ts, channel, question))
    posts = teams.slack.wait_for("chat.postMessage", before + len(sent))
    by_thread = {p["thread_ts"]: p for p in posts}
    for ts, channel, question in sent:
        post = by_thread[ts]
        assert post["channel"] == channel
        if channel == "COTHER":
            assert post["text"] == UNMAPPED
            continue
        collection = channels[channel]
        holder, expected = next((h, e) for q, h, e in QUESTIONS if q == question)
        blocks = json.dumps(post.get("blocks", ""), ensure_ascii=False)
        assert f"{OTHER[collection]}-handbook.txt" not in blocks  # never the other team's document
        if holder == collection:
            assert expected in post["text"], post
        else:
            assert post["text"] == ABSTAIN_TEXT, post


# --- the command line -------------------------------------------------------------------------------------
def test_the_command_line_asks_one_collection(teams: Teams, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from qa_service.cli import app

    if teams.settings.store == "pgvector":
        assert teams.settings.database_url is not None
        monkeypatch.setenv("QA_STORE", "pgvector")
        monkeypatch.setenv("QA_DATABASE_URL", teams.settings.database_url.get_secret_value())
    runner = CliRunner()
    for collection in ("hr", "eng"):
        for question, holder, expected in QUESTIONS:
            args = ["ask", question, "--json", "--collection", collection, "--index-dir", str(teams.settings.index_dir)]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
            body = json.loads(result.output)
            assert {c["document_id"] for c in body["citations"]} <= teams.documents[collection]
            if holder == collection:
                assert expected in body["citations"][0]["text"]
            else:
                assert body["abstained"]
    missing = runner.invoke(
        app, ["ask", "Anything?", "--collection", "nope", "--index-dir", str(teams.settings.index_dir)]
    )
    assert missing.exit_code == 2 and "nope" in missing.output


# --- a real server: the widget in a browser, and MCP for agents -------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def live(teams: Teams) -> Iterator[str]:
    from tests.conftest import serve_in_thread

    with serve_in_thread(create_app(teams.settings)) as url:
        yield url


def _widget_page(url: str, collection: str, key: str) -> str:
    return (
        "<!doctype html><html><body><h1>Team page</h1>"
        f'<script src="{url}/widget.js" data-api="{url}" data-key="{key}" data-collection="{collection}"></script>'
        "</body></html>"
    )


@pytest.mark.parametrize(("collection", "key"), [("hr", "hr-chat"), ("eng", "eng-chat")])
def test_the_widget_asks_only_its_collection(teams: Teams, live: str, browser: Any, collection: str, key: str) -> None:
    from tests.web.conftest import widget_ask

    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(
        f"{live}/team-page",
        lambda route: route.fulfill(body=_widget_page(live, collection, teams.keys[key]), content_type="text/html"),
    )
    page.goto(f"{live}/team-page")
    page.click(".launcher")
    page.wait_for_selector(".panel:not([hidden])")
    for question, holder, expected in QUESTIONS:
        answer = widget_ask(page, question)
        if holder == collection:
            assert expected in answer.inner_text()
            answer.locator(".chip").first.click()  # the cited context, read from the same collection
            page.locator(".context mark").wait_for(state="visible")
            page.wait_for_function(
                "() => document.querySelector('#qa-widget-host').shadowRoot.querySelector('.context')"
                ".innerText.length > 120"
            )
            assert expected in page.locator(".context mark").inner_text()
            page.locator(".context button").first.click()
        else:
            assert "could not find" in answer.inner_text()
    context.close()
    # the same widget pointed at the other collection with this key: refused, nothing cited
    other = browser.new_context()
    page = other.new_page()
    page.route(
        f"{live}/team-page",
        lambda route: route.fulfill(
            body=_widget_page(live, OTHER[collection], teams.keys[key]), content_type="text/html"
        ),
    )
    page.goto(f"{live}/team-page")
    page.click(".launcher")
    page.wait_for_selector(".panel:not([hidden])")
    refused = widget_ask(page, QUESTIONS[0][0])
    assert "may not use that collection" in refused.inner_text() and refused.locator(".chip").count() == 0
    other.close()
    assert errors == []


def test_mcp_tools_use_only_the_keys_collections(teams: Teams, live: str) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def run(key: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {teams.keys[key]}"}
        client = Client(
            streamable_http_client(f"{live}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=60))
        )
        async with client:
            listed = await client.call_tool("list_collections", {})
            own = await client.call_tool("ask", {"question": QUESTIONS[0][0], "collection": "hr"})
            other = await client.call_tool("ask", {"question": QUESTIONS[2][0], "collection": "eng"})
            search = await client.call_tool("search", {"query": "16 weeks", "collection": "hr"})
            return {"listed": listed, "own": own, "other": other, "search": search}

    def in_thread(key: str) -> dict[str, Any]:  # Playwright's sync API holds this thread's event loop
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run(key)).result()

    hr = in_thread("hr-chat")
    assert [c["name"] for c in hr["listed"].structured_content["collections"]] == ["hr"]
    assert "25 days of paid vacation" in hr["own"].structured_content["citations"][0]["text"]
    assert hr["other"].is_error and "may not use that collection" in hr["other"].content[0].text
    hits = hr["search"].structured_content["hits"]
    assert hits and {h["document_id"] for h in hits} <= teams.documents["hr"]
    admin = in_thread("admin")
    assert {c["name"] for c in admin["listed"].structured_content["collections"]} >= {"default", "hr", "eng"}
    assert "backups are kept for 16 weeks" in admin["other"].structured_content["citations"][0]["text"]
