import json
import time
import urllib.parse

from fastapi.testclient import TestClient

from qa_service.slack.bot import APOLOGY, thread_conversation_id
from tests.slack.conftest import FakeSlack, event_body, signed

KHERSON = "How many troops withdrew from Kherson?"


def mention(text: str, ts: str = "1700000000.000100", thread_ts: str | None = None, **extra: str) -> dict:
    event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {text}", "ts": ts, "channel": "C1", **extra}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def post_event(client: TestClient, event: dict, event_id: str = "Ev1", **headers: str) -> int:
    body = event_body(event, event_id)
    response = client.post(
        "/slack/events", content=body, headers={**signed(body, **headers), "content-type": "application/json"}
    )
    return response.status_code


def blocks_text(call: dict) -> str:
    blocks = call["blocks"] if isinstance(call["blocks"], list) else json.loads(call["blocks"])
    return json.dumps(blocks, ensure_ascii=False)


def test_mention_is_answered_in_thread_with_cited_blocks(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    started = time.monotonic()
    assert post_event(slack_client, mention(KHERSON)) == 200
    assert time.monotonic() - started < 3  # acknowledged within Slack's limit
    (post,) = fake_slack.wait_for("chat.postMessage")
    assert post["channel"] == "C1" and post["thread_ts"] == "1700000000.000100"
    text = blocks_text(post)
    assert "20,000 to 30,000" in text and "[1]" in text and "000_7957cff8644a918e.txt" in text
    assert "qa_feedback_up" in text and "20,000 to 30,000" in post["text"]


def test_follow_up_in_the_thread_uses_its_history(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    root = "1700000000.000200"
    post_event(slack_client, mention("Who is Mark Milley?", ts=root), "EvA")
    fake_slack.wait_for("chat.postMessage", 1)
    post_event(slack_client, mention("What did he say about negotiations?", ts="1700000001.0", thread_ts=root), "EvB")
    second = fake_slack.wait_for("chat.postMessage", 2)[1]
    assert second["thread_ts"] == root and "negotiations" in blocks_text(second)
    history = slack_client.app.state.conversations.history(thread_conversation_id("C1", root), "slack")  # type: ignore[attr-defined]
    assert [t.content for t in history if t.role == "user"] == [
        "Who is Mark Milley?",
        "What did he say about negotiations?",
    ]


def test_bad_signature_and_stale_requests_are_refused(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    body = event_body(mention(KHERSON))
    bad = slack_client.post(
        "/slack/events", content=body, headers={**signed(body, secret="wrong"), "content-type": "application/json"}
    )
    stale = slack_client.post(
        "/slack/events",
        content=body,
        headers={**signed(body, timestamp=int(time.time()) - 6 * 60), "content-type": "application/json"},
    )
    assert bad.status_code == 401 and stale.status_code == 401
    time.sleep(1)
    assert fake_slack.posted("chat.postMessage") == []


def test_retried_events_are_answered_once(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    assert post_event(slack_client, mention(KHERSON), "EvR") == 200
    assert (
        post_event(
            slack_client, mention(KHERSON), "EvR", **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        )
        == 200
    )
    fake_slack.wait_for("chat.postMessage")
    time.sleep(1.5)
    assert len(fake_slack.posted("chat.postMessage")) == 1


def test_direct_messages_answered_and_bots_ignored(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    dm = {"type": "message", "channel_type": "im", "user": "U1", "text": KHERSON, "ts": "1700000000.3", "channel": "D1"}
    post_event(slack_client, {**dm, "bot_id": "B999"}, "EvBot")
    post_event(slack_client, {**dm, "subtype": "message_changed"}, "EvEdit")
    post_event(slack_client, {**dm, "channel_type": "channel", "channel": "C9"}, "EvChannel")
    post_event(slack_client, mention(KHERSON, bot_id="B999"), "EvBotMention")
    post_event(slack_client, dm, "EvDM")
    (post,) = fake_slack.wait_for("chat.postMessage")
    time.sleep(1)
    assert len(fake_slack.posted("chat.postMessage")) == 1
    assert post["channel"] == "D1" and post["thread_ts"] == "1700000000.3"


def form_post(client: TestClient, fields: dict[str, str]) -> int:
    body = urllib.parse.urlencode(fields)
    headers = {**signed(body), "content-type": "application/x-www-form-urlencoded"}
    return client.post("/slack/events", content=body, headers=headers).status_code


def test_slash_command_is_ephemeral_with_share_and_feedback(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    assert (
        form_post(
            slack_client,
            {
                "command": "/ask",
                "text": KHERSON,
                "channel_id": "C2",
                "user_id": "U7",
                "team_id": "T1",
                "response_url": fake_slack.url + "respond",
                "trigger_id": "1.2.3",
            },
        )
        == 200
    )
    (ephemeral,) = fake_slack.wait_for("chat.postEphemeral")
    assert ephemeral["user"] == "U7" and "20,000 to 30,000" in blocks_text(ephemeral)
    blocks = ephemeral["blocks"] if isinstance(ephemeral["blocks"], list) else json.loads(ephemeral["blocks"])
    buttons = {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert set(buttons) == {"qa_feedback_up", "qa_feedback_down", "qa_share"}

    def click(action_id: str) -> int:
        payload = {
            "type": "block_actions",
            "user": {"id": "U7"},
            "channel": {"id": "C2"},
            "team": {"id": "T1"},
            "trigger_id": "1.2.3",
            "api_app_id": "A1",
            "container": {"type": "message"},
            "actions": [{**buttons[action_id], "block_id": "b", "action_ts": "1"}],
        }
        return form_post(slack_client, {"payload": json.dumps(payload)})

    assert click("qa_share") == 200
    (shared,) = fake_slack.wait_for("chat.postMessage")
    assert (
        shared["channel"] == "C2"
        and "20,000 to 30,000" in blocks_text(shared)
        and "qa_share" not in blocks_text(shared)
    )
    assert click("qa_feedback_down") == 200
    fake_slack.wait_for("chat.postEphemeral", 2)
    ref = json.loads(buttons["qa_feedback_down"]["value"])
    feedback = slack_client.app.state.conversations.feedback(ref["c"])  # type: ignore[attr-defined]
    assert feedback[0]["rating"] == "down" and feedback[0]["turn"] == ref["t"]


def test_rate_limited_web_api_calls_are_retried(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    fake_slack.rate_limit["chat.postMessage"] = 1
    post_event(slack_client, mention(KHERSON), "Ev429")
    (post,) = fake_slack.wait_for("chat.postMessage")
    attempts = [args for name, args in fake_slack.calls if name == "chat.postMessage"]
    assert len(attempts) == 2 and attempts[0]["_limited"] and "20,000 to 30,000" in blocks_text(post)


def test_errors_become_an_apology_in_thread(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    service = slack_client.app.state.service  # type: ignore[attr-defined]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("index exploded")

    service.ask = broken
    post_event(slack_client, mention(KHERSON, ts="1700000000.9"), "EvErr")
    (post,) = fake_slack.wait_for("chat.postMessage")
    assert post["text"] == APOLOGY and post["thread_ts"] == "1700000000.9"


def test_events_endpoint_is_404_when_slack_is_not_configured(fake_settings) -> None:  # type: ignore[no-untyped-def]
    from qa_service.api.app import create_app

    with TestClient(create_app(fake_settings)) as client:
        response = client.post("/slack/events", content="{}", headers={"content-type": "application/json"})
    assert response.status_code == 404 and "QA_SLACK_BOT_TOKEN" in response.json()["error"]["message"]


def test_manifest_matches_what_the_bot_handles() -> None:
    import yaml

    from tests.conftest import ROOT

    manifest = yaml.safe_load((ROOT / "slack" / "manifest.yml").read_text())
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
    assert settings["interactivity"]["is_enabled"] is True
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/ask"]
    assert {"app_mentions:read", "chat:write", "commands", "im:history"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
    urls = [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        manifest["features"]["slash_commands"][0]["url"],
    ]
    assert all(u.endswith("/slack/events") for u in urls)


def test_socket_mode_command_explains_missing_tokens(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from qa_service.cli import app

    monkeypatch.delenv("QA_SLACK_APP_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["slack"])
    assert result.exit_code == 2 and "QA_SLACK_APP_TOKEN" in result.output


def test_the_bots_own_messages_are_ignored(slack_client: TestClient, fake_slack: FakeSlack) -> None:
    own = {
        "type": "message",
        "channel_type": "im",
        "user": "UBOT",
        "text": KHERSON,
        "ts": "1700000000.5",
        "channel": "D1",
    }
    post_event(slack_client, own, "EvSelf")
    post_event(slack_client, mention(KHERSON, ts="1700000000.6", user="UBOT"), "EvSelfMention")
    post_event(slack_client, mention(KHERSON, ts="1700000000.7"), "EvHuman")
    (post,) = fake_slack.wait_for("chat.postMessage")
    time.sleep(1)
    assert len(fake_slack.posted("chat.postMessage")) == 1 and post["thread_ts"] == "1700000000.7"


def test_unmapped_channels_and_dms_can_be_refused(
    tmp_path,
    fake_slack: FakeSlack,
    seeds_copy,  # type: ignore[no-untyped-def]
) -> None:
    from pydantic import SecretStr

    from qa_service.api.app import create_app
    from qa_service.service import QAService
    from qa_service.slack.bot import GONE, NO_DIRECT, UNMAPPED
    from tests.conftest import hash_settings
    from tests.slack.conftest import SECRET

    settings = hash_settings(tmp_path / "index").model_copy(
        update={
            "slack_bot_token": SecretStr("xoxb-test"),
            "slack_signing_secret": SecretStr(SECRET),
            "slack_api_url": fake_slack.url,
            "slack_default_collection": "",
            "slack_dm_collection": "",
            "slack_channels": {"CGONE": "no-such-collection", "CSEED": "default"},
        }
    )
    QAService(settings).index_paths([seeds_copy])
    with TestClient(create_app(settings)) as client:
        assert post_event(client, mention(KHERSON), event_id="Ev1") == 200  # channel C1: not mapped
        assert post_event(client, mention(KHERSON, channel="CGONE"), event_id="Ev2") == 200
        dm = {"type": "message", "channel_type": "im", "user": "U1", "text": KHERSON, "ts": "1.2", "channel": "D1"}
        assert post_event(client, dm, event_id="Ev3") == 200
        assert post_event(client, mention(KHERSON, channel="CSEED"), event_id="Ev4") == 200
        posts = fake_slack.wait_for("chat.postMessage", 4)
    by_channel = {p["channel"]: p for p in posts}
    assert by_channel["C1"]["text"] == UNMAPPED
    assert by_channel["CGONE"]["text"] == GONE
    assert by_channel["D1"]["text"] == NO_DIRECT
    assert "20,000 to 30,000" in by_channel["CSEED"]["text"]
