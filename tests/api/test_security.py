import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.api.security import RateLimitedError, RateLimiter
from qa_service.settings import Settings
from tests.api.conftest import ADMIN, ADMIN_HEADERS, CHAT

MESSAGE = {"message": "How many troops withdrew from Kherson?"}


def make_client(settings: Settings, **update: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update)))


@pytest.fixture
def locked(api_settings: Settings) -> Iterator[TestClient]:
    with make_client(api_settings, chat_api_key=SecretStr(CHAT)) as c:
        yield c


def test_admin_endpoints_need_the_admin_key(client: TestClient) -> None:
    assert client.get("/v1/documents").status_code == 401
    wrong = client.get("/v1/documents", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/documents", headers={"Authorization": f"Basic {ADMIN}"}).status_code == 401
    assert client.get("/v1/documents", headers=ADMIN_HEADERS).status_code == 200


def test_document_management_is_off_without_an_admin_key(api_settings: Settings) -> None:
    with make_client(api_settings, admin_api_key=None) as c:
        response = c.get("/v1/documents", headers=ADMIN_HEADERS)
    assert response.status_code == 403 and "QA_ADMIN_API_KEY" in response.json()["error"]["message"]


def test_chat_key_when_configured(locked: TestClient) -> None:
    assert locked.post("/v1/chat", json=MESSAGE).status_code == 401
    assert locked.post("/v1/chat", json=MESSAGE, headers={"Authorization": f"Bearer {CHAT}"}).status_code == 200
    assert locked.post("/v1/chat", json=MESSAGE, headers=ADMIN_HEADERS).status_code == 200
    assert (
        locked.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 401
    )
    assert locked.get("/healthz").status_code == 200  # probes stay open


def test_keys_are_never_logged(locked: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        locked.post("/v1/chat", json=MESSAGE, headers={"Authorization": f"Bearer {CHAT}"})
        locked.get("/v1/documents", headers={"Authorization": "Bearer wrong-key-xyz"})
    assert CHAT not in caplog.text and "wrong-key-xyz" not in caplog.text
    assert "request" in caplog.text


def test_rate_limit_gives_429_with_retry_after(api_settings: Settings) -> None:
    with make_client(api_settings, rate_limit_burst=3, rate_limit_per_minute=6) as c:
        statuses = [c.post("/v1/chat", json=MESSAGE).status_code for _ in range(4)]
        limited = c.post("/v1/chat", json=MESSAGE)
        assert statuses[:3] == [200, 200, 200] and limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1 and limited.json()["error"]["code"] == "rate_limited"
        # another client (key) has its own bucket
        assert c.get("/v1/documents", headers=ADMIN_HEADERS).status_code == 200


def test_token_bucket_refills() -> None:
    limiter = RateLimiter(per_minute=60, burst=2)
    limiter.hit("a", now=0.0)
    limiter.hit("a", now=0.0)
    with pytest.raises(RateLimitedError) as info:
        limiter.hit("a", now=0.0)
    assert info.value.headers == {"Retry-After": "1"}
    limiter.hit("a", now=1.0)
    limiter.hit("b", now=0.0)


def test_request_body_limit_is_413(api_settings: Settings) -> None:
    with make_client(api_settings, max_body_bytes=2048) as c:
        response = c.post("/v1/chat", json={"message": "x" * 4000})
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_cors_allows_only_listed_origins(api_settings: Settings, client: TestClient) -> None:
    preflight = {"Origin": "https://news.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/chat", headers=preflight).headers
    with make_client(api_settings, cors_origins=["https://news.example"]) as c:
        allowed = c.options("/v1/chat", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://news.example"
        other = c.options("/v1/chat", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
