"""A fake Slack Web API on loopback that records every call, and signed Slack requests."""

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from qa_service.api.app import create_app
from qa_service.service import QAService
from tests.conftest import hash_settings

SECRET = "test-signing-secret"


@dataclass
class FakeSlack:
    url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rate_limit: dict[str, int] = field(default_factory=dict)  # method -> how many 429s to return first

    def posted(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method and not args.get("_limited")]

    def wait_for(self, method: str, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.posted(method)) < count:
            assert time.monotonic() < deadline, f"{method} called {len(self.posted(method))} times: {self.calls}"
            time.sleep(0.05)
        return self.posted(method)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with running_fake_slack() as fake:
        yield fake


@contextmanager
def running_fake_slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API on a free loopback port, for as long as the block runs."""
    fake = FakeSlack(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            method = self.path.rsplit("/", 1)[-1]
            raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            if "json" in self.headers.get("content-type", ""):
                args = json.loads(raw or "{}")
            else:
                args = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
            if fake.rate_limit.get(method, 0) > 0:
                fake.rate_limit[method] -= 1
                fake.calls.append((method, {**args, "_limited": True}))
                self.send_response(429)
                self.send_header("Retry-After", "1")
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": false, "error": "ratelimited"}')
                return
            fake.calls.append((method, args))
            body = {"ok": True, "ts": f"{time.time():.6f}", "channel": args.get("channel", "C1")}
            if method == "auth.test":
                body.update(user_id="UBOT", bot_id="BBOT", team_id="T1", user="qa-bot", url="https://x.slack.com/")
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()


@pytest.fixture
def slack_client(tmp_path: Path, fake_slack: FakeSlack, seeds_copy: Path) -> Iterator[TestClient]:
    settings = hash_settings(tmp_path / "index").model_copy(
        update={
            "slack_bot_token": SecretStr("xoxb-test"),
            "slack_signing_secret": SecretStr(SECRET),
            "slack_api_url": fake_slack.url,
        }
    )
    QAService(settings).index_paths([seeds_copy])
    with TestClient(create_app(settings)) as client:
        yield client


def signed(body: str, timestamp: int | None = None, secret: str = SECRET, **headers: str) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, **headers}


def event_body(event: dict[str, Any], event_id: str = "Ev1") -> str:
    return json.dumps(
        {
            "type": "event_callback",
            "team_id": "T1",
            "api_app_id": "A1",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    )
