"""Rate limits cannot be dodged: buckets are keyed by the verified key plus the client address, failed
authentication is throttled per address, and the forwarded address counts only from trusted proxies."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.requests import Request

from qa_service.api.app import create_app
from qa_service.settings import Settings
from tests.api.conftest import ADMIN, CHAT

MESSAGE = {"message": "How many troops withdrew from Kherson?"}


@contextmanager
def client_at(settings: Settings, address: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings), client=(address, 40000)) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_rotating_unverified_tokens_share_the_address_bucket(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"rate_limit_burst": 3, "rate_limit_per_minute": 1})
    with client_at(settings, "192.0.2.10") as c:
        statuses = [c.post("/v1/chat", json=MESSAGE, headers=bearer(uuid.uuid4().hex)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_one_key_many_visitors_get_a_bucket_each(api_settings: Settings) -> None:
    settings = api_settings.model_copy(
        update={"chat_api_key": SecretStr(CHAT), "rate_limit_burst": 2, "rate_limit_per_minute": 1}
    )
    app = create_app(settings)
    with TestClient(app, client=("192.0.2.1", 1)) as first, TestClient(app, client=("192.0.2.2", 1)) as second:
        assert [first.post("/v1/chat", json=MESSAGE, headers=bearer(CHAT)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert second.post("/v1/chat", json=MESSAGE, headers=bearer(CHAT)).status_code == 200


def test_failed_authentication_is_throttled_per_address(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"auth_failures_burst": 5, "auth_failures_per_minute": 1})
    app = create_app(settings)
    with TestClient(app, client=("192.0.2.66", 1)) as attacker, TestClient(app, client=("192.0.2.7", 1)) as admin:
        statuses = [attacker.get("/v1/documents", headers=bearer(f"guess-{n}")).status_code for n in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        blocked = attacker.get("/v1/documents", headers=bearer(ADMIN))  # not even checked now
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert admin.get("/v1/documents", headers=bearer(ADMIN)).status_code == 200


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers, "method": "GET", "path": "/"})


def test_forwarded_address_counts_only_from_trusted_proxies() -> None:
    from qa_service.api.security import client_address

    trusted = ["10.0.0.0/8", "127.0.0.1"]
    assert client_address(_request("10.1.2.3", "198.51.100.7"), trusted) == "198.51.100.7"
    # A client's own X-Forwarded-For entries, left of what the proxies added, are not believed.
    assert client_address(_request("10.1.2.3", "203.0.113.9, 198.51.100.7, 10.9.9.9"), trusted) == "198.51.100.7"
    assert client_address(_request("198.51.100.7", "203.0.113.9"), trusted) == "198.51.100.7"  # not a proxy
    assert client_address(_request("10.1.2.3", "not-an-address"), trusted) == "10.1.2.3"
    assert client_address(_request("10.1.2.3", "198.51.100.7"), []) == "10.1.2.3"
