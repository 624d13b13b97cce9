"""/v1/keys: admins create (the secret shown once), list (never a secret) and revoke scoped keys; a
created key works at once and stops at its revocation; a generated table of (credential x route x
QA_CHAT_API_KEY) statuses; rate limits by key id; lookups off the event loop; PostgreSQL too."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.api.deps import ChatAuth, PrincipalDep
from qa_service.api.security import client_identity
from qa_service.keys.store import hash_secret
from qa_service.service import QAService
from qa_service.settings import Settings
from tests.api.conftest import ADMIN, ADMIN_HEADERS, CHAT

MESSAGE = {"message": "How many troops withdrew from Kherson?"}


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def create(client: TestClient, role: str, collections: list[str] | None = None, **extra: object) -> dict[str, str]:
    response = client.post(
        "/v1/keys", json={"role": role, "collections": collections or [], **extra}, headers=ADMIN_HEADERS
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    """The API's settings with collection `hr` (besides `default`): keys may only name existing collections."""
    service = QAService(api_settings)
    service.create_collection("hr")
    service.close()
    return api_settings


@pytest.fixture
def locked(api_settings: Settings) -> Iterator[TestClient]:
    """Chat needs a key (QA_CHAT_API_KEY set)."""
    with TestClient(create_app(api_settings.model_copy(update={"chat_api_key": SecretStr(CHAT)}))) as c:
        yield c


def test_a_created_key_works_at_once_and_stops_when_revoked(locked: TestClient) -> None:
    before = time.time() - 1
    response = locked.post(
        "/v1/keys", json={"role": "chat", "collections": ["default"], "name": "site widget"}, headers=ADMIN_HEADERS
    )
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    created = response.json()
    assert set(created) == {"id", "key", "role", "collections", "name", "created_at"}
    assert (created["role"], created["collections"], created["name"]) == ("chat", ["default"], "site widget")
    assert created["id"].startswith("key_") and created["key"].startswith("qas_") and created["created_at"] > before

    assert locked.post("/v1/chat", json=MESSAGE, headers=bearer(created["key"])).status_code == 200
    listed = locked.get("/v1/keys", headers=ADMIN_HEADERS)
    assert listed.status_code == 200
    [entry] = listed.json()["keys"]
    assert entry == {
        "id": created["id"],
        "role": "chat",
        "collections": ["default"],
        "name": "site widget",
        "created_at": created["created_at"],
        "last_used_at": entry["last_used_at"],
        "revoked": False,
    }
    assert entry["last_used_at"] >= created["created_at"]
    assert created["key"] not in listed.text and hash_secret(created["key"]) not in listed.text

    assert locked.delete(f"/v1/keys/{created['id']}", headers=ADMIN_HEADERS).status_code == 204
    refused = locked.post("/v1/chat", json=MESSAGE, headers=bearer(created["key"]))
    assert refused.status_code == 401 and refused.json()["error"]["message"] == "Invalid API key."
    assert refused.headers["www-authenticate"] == "Bearer"
    assert locked.get("/v1/keys", headers=ADMIN_HEADERS).json()["keys"][0]["revoked"] is True
    assert locked.delete(f"/v1/keys/{created['id']}", headers=ADMIN_HEADERS).status_code == 204  # idempotent
    unknown = locked.delete("/v1/keys/key_000000000000", headers=ADMIN_HEADERS)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "key_not_found"
    settings_key = locked.delete("/v1/keys/env-admin", headers=ADMIN_HEADERS)
    assert settings_key.status_code == 422 and "QA_ADMIN_API_KEY" in settings_key.json()["error"]["message"]
    # the bootstrap keys keep working
    assert locked.post("/v1/chat", json=MESSAGE, headers=bearer(CHAT)).status_code == 200
    assert locked.post("/v1/chat", json=MESSAGE, headers=ADMIN_HEADERS).status_code == 200


def test_a_created_admin_key_manages_keys(client: TestClient) -> None:
    admin = create(client, "admin", name="second admin")
    made = client.post("/v1/keys", json={"role": "manager", "collections": ["hr"]}, headers=bearer(admin["key"]))
    assert made.status_code == 201 and made.json()["collections"] == ["hr"]
    assert client.delete(f"/v1/keys/{admin['id']}", headers=bearer(admin["key"])).status_code == 204  # itself
    assert client.get("/v1/keys", headers=bearer(admin["key"])).status_code == 401


@pytest.mark.parametrize(
    ("body", "fix"),
    [
        ({"role": "owner", "collections": ["hr"]}, "role: Input should be 'admin', 'manager' or 'chat'"),
        ({"collections": ["hr"]}, "role: Field required"),
        ({"role": "admin", "collections": ["hr"]}, "An admin key has every collection: leave 'collections' empty."),
        ({"role": "chat"}, "A chat key needs 'collections'"),
        ({"role": "manager", "collections": []}, "A manager key needs 'collections'"),
        (
            {"role": "chat", "collections": ["HR"]},
            "Invalid collection name 'HR': a collection name is 1-64 characters of lowercase letters",
        ),
        ({"role": "chat", "collections": ["hr", "hr"]}, "Collections listed more than once: hr."),
        ({"role": "chat", "collections": ["hr"], "name": "x" * 101}, "name: String should have at most 100"),
        ({"role": "chat", "collections": "hr"}, "collections: Input should be a valid list"),
    ],
)
def test_bad_key_requests_say_what_to_fix(client: TestClient, body: dict[str, object], fix: str) -> None:
    response = client.post("/v1/keys", json=body, headers=ADMIN_HEADERS)
    assert response.status_code == 422 and fix in response.json()["error"]["message"]
    assert client.get("/v1/keys", headers=ADMIN_HEADERS).json()["keys"] == []


CREDENTIALS = (
    "none",
    "placeholder",  # what an OpenAI client sends to a public server
    "unknown-qas",
    "revoked",
    "bootstrap-admin",
    "bootstrap-chat",
    "admin",
    "manager",
    "chat",
)
ROUTES = ("GET /v1/keys", "POST /v1/keys", "DELETE /v1/keys/{id}", "GET /v1/admin/analytics", "POST /v1/chat")
OUTCOMES = {  # what each route answers once allowed
    "GET /v1/keys": 200,
    "POST /v1/keys": 201,
    "DELETE /v1/keys/{id}": 404,
    "GET /v1/admin/analytics": 200,
    "POST /v1/chat": 200,
}


def expected_status(credential: str, route: str, chat_key: str) -> int:
    """From the rules: admin routes take admin keys (other valid stored keys: 403; QA_CHAT_API_KEY is a
    chat-route key only, as before); chat routes take any valid key, and no key while chat is public,
    where a token that is not shaped like a stored key is ignored. An unknown or revoked `qas_` key is
    a 401 everywhere."""
    valid_everywhere = {"bootstrap-admin", "admin", "manager", "chat"}
    if route == "POST /v1/chat":
        if credential in valid_everywhere | {"bootstrap-chat"}:
            return OUTCOMES[route]
        if credential in {"none", "placeholder"} and chat_key == "unset":
            return OUTCOMES[route]
        return 401
    if credential in {"bootstrap-admin", "admin"}:
        return OUTCOMES[route]
    return 403 if credential in {"manager", "chat"} else 401


TABLE = {case: expected_status(*case) for case in itertools.product(CREDENTIALS, ROUTES, ("set", "unset"))}


def test_the_status_table_says_what_the_rules_say() -> None:
    assert len(TABLE) == 9 * 5 * 2
    assert TABLE[("manager", "POST /v1/keys", "set")] == 403
    assert TABLE[("chat", "GET /v1/keys", "unset")] == 403
    assert TABLE[("none", "GET /v1/keys", "unset")] == 401
    assert TABLE[("bootstrap-chat", "GET /v1/admin/analytics", "set")] == 401
    assert TABLE[("placeholder", "POST /v1/chat", "unset")] == 200
    assert TABLE[("placeholder", "POST /v1/chat", "set")] == 401
    assert TABLE[("unknown-qas", "POST /v1/chat", "unset")] == 401
    assert TABLE[("revoked", "POST /v1/chat", "unset")] == 401
    assert TABLE[("admin", "DELETE /v1/keys/{id}", "set")] == 404
    assert TABLE[("chat", "POST /v1/chat", "set")] == 200


@pytest.mark.parametrize("chat_key", ["set", "unset"])
def test_every_credential_on_every_route(api_settings: Settings, chat_key: str) -> None:
    settings = api_settings.model_copy(
        update={
            "chat_api_key": SecretStr(CHAT) if chat_key == "set" else None,
            "auth_failures_burst": 10_000,
            "rate_limit_burst": 10_000,
        }
    )
    with TestClient(create_app(settings)) as c:
        tokens: dict[str, str | None] = {
            "none": None,
            "placeholder": "sk-unused",
            "unknown-qas": "qas_" + "x" * 43,
            "bootstrap-admin": ADMIN,
            "bootstrap-chat": CHAT if chat_key == "set" else "chat-key-not-configured",
            "admin": create(c, "admin")["key"],
            "manager": create(c, "manager", ["default"])["key"],
            "chat": create(c, "chat", ["default"])["key"],
        }
        revoked = create(c, "chat", ["default"])
        c.delete(f"/v1/keys/{revoked['id']}", headers=ADMIN_HEADERS)
        tokens["revoked"] = revoked["key"]
        requests = {
            "GET /v1/keys": lambda h: c.get("/v1/keys", headers=h),
            "POST /v1/keys": lambda h: c.post("/v1/keys", json={"role": "chat", "collections": ["hr"]}, headers=h),
            "DELETE /v1/keys/{id}": lambda h: c.delete("/v1/keys/key_000000000000", headers=h),
            "GET /v1/admin/analytics": lambda h: c.get("/v1/admin/analytics", headers=h),
            "POST /v1/chat": lambda h: c.post("/v1/chat", json=MESSAGE, headers=h),
        }
        seen = {}
        for credential, route in itertools.product(CREDENTIALS, ROUTES):
            response = requests[route](bearer(tokens[credential]))
            seen[(credential, route, chat_key)] = response.status_code
            if response.status_code == 401:
                assert response.headers["www-authenticate"] == "Bearer"
            if response.status_code == 403:
                assert response.json()["error"]["code"] == "forbidden"
    assert seen == {case: status for case, status in TABLE.items() if case[2] == chat_key}


def test_the_bootstrap_chat_key_opens_no_admin_route(locked: TestClient) -> None:
    assert locked.get("/v1/keys", headers=bearer(CHAT)).status_code == 401  # as before: not an admin route key


def test_rate_limits_are_per_key_id(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"rate_limit_burst": 3, "rate_limit_per_minute": 1})
    with TestClient(create_app(settings), client=("192.0.2.20", 1)) as c:
        first, second = create(c, "chat", ["default"]), create(c, "chat", ["default"])
        statuses = [c.post("/v1/chat", json=MESSAGE, headers=bearer(first["key"])).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert c.post("/v1/chat", json=MESSAGE, headers=bearer(second["key"])).status_code == 200
        assert c.post("/v1/chat", json=MESSAGE).status_code == 200  # the address alone: its own bucket
    assert client_identity("192.0.2.20", first["id"]) == f"key:{first['id']}|ip:192.0.2.20"
    assert client_identity("192.0.2.20") == "ip:192.0.2.20"


def test_key_lookups_run_off_the_event_loop(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    key = create(client, "admin")
    keys = client.app.state.keys  # type: ignore[attr-defined]
    real, loops = keys.authenticate, []

    def recording(secret: str) -> object:
        try:
            asyncio.get_running_loop()
            loops.append(True)
        except RuntimeError:
            loops.append(False)
        return real(secret)

    monkeypatch.setattr(keys, "authenticate", recording)
    assert client.get("/v1/keys", headers=bearer(key["key"])).status_code == 200
    assert loops == [False]  # a worker thread: no event loop there


def test_a_stalled_key_store_is_a_503_not_a_hang(api_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(api_settings.model_copy(update={"database_timeout_seconds": 0.2}))) as c:
        key = create(c, "admin")
        monkeypatch.setattr(c.app.state.keys, "authenticate", lambda secret: time.sleep(1.0))  # type: ignore[attr-defined]
        started = time.monotonic()
        response = c.get("/v1/keys", headers=bearer(key["key"]))
        assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
        assert time.monotonic() - started < 0.9


def test_keys_on_postgres_hold_across_replicas(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        index_dir=tmp_path / "index", store="pgvector", database_url=database_url, admin_api_key=SecretStr(ADMIN)
    )
    with (
        TestClient(create_app(settings, load_service=False)) as one,
        TestClient(create_app(settings, load_service=False)) as two,
    ):
        admin = create(one, "admin")
        assert two.get("/v1/keys", headers=bearer(admin["key"])).json()["keys"][0]["id"] == admin["id"]
        assert one.delete(f"/v1/keys/{admin['id']}", headers=ADMIN_HEADERS).status_code == 204
        assert two.get("/v1/keys", headers=bearer(admin["key"])).status_code == 401


def test_the_schema_documents_keys_without_secrets(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"post", "get"} <= set(schema["paths"]["/v1/keys"]) and "delete" in schema["paths"]["/v1/keys/{key_id}"]
    components = schema["components"]["schemas"]
    assert "key" in components["KeyCreated"]["properties"] and "key" not in components["KeyOut"]["properties"]


def test_a_route_taking_the_principal_twice_resolves_it_once(api_settings: Settings) -> None:
    app = create_app(api_settings.model_copy(update={"rate_limit_burst": 2, "rate_limit_per_minute": 1}))

    @app.get("/probe", dependencies=[ChatAuth])
    async def probe(principal: PrincipalDep, request: Request) -> dict[str, str | None]:
        assert request.state.principal is principal
        return {"role": principal.role, "key_id": principal.key_id}

    with TestClient(app) as c:
        assert c.get("/probe", headers=ADMIN_HEADERS).json() == {"role": "admin", "key_id": "env-admin"}
        assert c.get("/probe", headers=ADMIN_HEADERS).status_code == 200  # counted once per request
        assert c.get("/probe", headers=ADMIN_HEADERS).status_code == 429
        assert c.get("/probe").json() == {"role": "anonymous", "key_id": None}


def test_created_keys_outlive_the_bootstrap_admin_key(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings)) as c:
        admin, manager = create(c, "admin"), create(c, "manager", ["hr"])
    with TestClient(create_app(api_settings.model_copy(update={"admin_api_key": None}))) as c:
        assert c.get("/v1/keys", headers=bearer(admin["key"])).status_code == 200
        refused = c.get("/v1/keys", headers=bearer(manager["key"]))
        assert refused.status_code == 403 and refused.json()["error"]["message"] == "This needs an admin key."
        disabled = c.get("/v1/keys", headers=ADMIN_HEADERS)
        assert disabled.status_code == 403 and "QA_ADMIN_API_KEY" in disabled.json()["error"]["message"]
