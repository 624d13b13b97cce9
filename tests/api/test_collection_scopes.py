"""The scope table: every kind of credential on every route that names a collection, for every kind of
collection, with chat public and with chat behind a key. The expected status comes from the rules as
the README states them (`expected` below, written apart from `qa_service.keys.principal`), and every
cell of the generated table is asserted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.service import QAService
from qa_service.settings import Settings
from tests.api.conftest import ADMIN_HEADERS, CHAT

# Collections: hr and eng are private, pub is public, `default` is public (as every index starts).
COLLECTIONS = {"default": True, "hr": False, "eng": False, "pub": True}
TARGETS = ["hr", "eng", "pub", "default", "missing"]
CREDENTIALS = ["none", "unknown-key", "admin", "env-admin", "manager-hr", "chat-hr", "env-chat"]
SCOPES = {"manager-hr": {"hr"}, "chat-hr": {"hr"}, "env-chat": {"default"}}


@dataclass(frozen=True)
class Route:
    name: str
    kind: str  # "ask" | "manage" | "admin" | "list"
    call: Callable[[TestClient, str, dict[str, str]], Any]
    ok: int = 200  # the status when allowed and the collection exists


def _chat(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.post("/v1/chat", json={"message": "How many troops withdrew?", "collection": coll}, headers=h)


def _stream(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.post("/v1/chat", json={"message": "Troops?", "collection": coll, "stream": True}, headers=h)


def _completion(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    body = {"model": f"qa-service/{coll}", "messages": [{"role": "user", "content": "Troops?"}]}
    return c.post("/v1/chat/completions", json=body, headers=h)


def _context(c: TestClient, coll: str, h: dict[str, str]) -> Any:  # no such sentence: 404 once allowed
    return c.get("/v1/documents/nodoc/context", params={"start": 0, "end": 5, "collection": coll}, headers=h)


def _upload(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.post("/v1/documents", json={"source": "s.txt", "text": "Scopes hold.", "collection": coll}, headers=h)


def _list_docs(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.get("/v1/documents", params={"collection": coll}, headers=h)


def _get_doc(c: TestClient, coll: str, h: dict[str, str]) -> Any:  # no such document: 404 once allowed
    return c.get("/v1/documents/nodoc", params={"collection": coll}, headers=h)


def _delete_doc(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.delete("/v1/documents/nodoc", params={"collection": coll}, headers=h)


def _get_collection(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.get(f"/v1/collections/{coll}", headers=h)


def _patch_collection(c: TestClient, coll: str, h: dict[str, str]) -> Any:  # a no-op change
    return c.patch(f"/v1/collections/{coll}", json={"public": COLLECTIONS.get(coll, False)}, headers=h)


def _map_channel(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.put("/v1/slack/channels/CSCOPE", json={"collection": coll}, headers=h)


def _create_key(c: TestClient, coll: str, h: dict[str, str]) -> Any:
    return c.post("/v1/keys", json={"role": "chat", "collections": [coll]}, headers=h)


ROUTES = [
    Route("chat", "ask", _chat),
    Route("chat-stream", "ask", _stream),
    Route("completions", "ask", _completion),
    Route("context", "ask", _context, ok=404),
    Route("get-collection", "ask", _get_collection),
    Route("upload", "manage", _upload, ok=201),
    Route("list-documents", "manage", _list_docs),
    Route("get-document", "manage", _get_doc, ok=404),
    Route("delete-document", "manage", _delete_doc, ok=404),
    Route("patch-collection", "admin", _patch_collection),
    Route("map-slack-channel", "admin", _map_channel),
    Route("create-key", "admin", _create_key, ok=201),
]


def expected(credential: str, route: Route, target: str, chat_key: bool) -> int:
    """The README's rules."""
    exists, public = target in COLLECTIONS, COLLECTIONS.get(target, False)
    if credential == "unknown-key":
        return 401
    admin = credential in ("admin", "env-admin")
    if route.kind == "ask":
        if credential == "none" and chat_key:
            return 401
        in_scope = admin or target in SCOPES.get(credential, set())
        if in_scope:
            return route.ok if exists else 404
        return route.ok if (public and exists and not chat_key) else 403
    if credential in ("none", "env-chat"):  # document and admin routes need a key that is not the chat key
        return 401
    if route.kind == "manage":
        if admin or (target in SCOPES.get(credential, set()) and credential.startswith("manager")):
            return route.ok if exists else 404
        return 403
    if not admin:
        return 403
    return route.ok if exists else 404


@pytest.fixture(params=[False, True], ids=["public-chat", "chat-key"])
def table_client(request: pytest.FixtureRequest, api_settings: Settings) -> Iterator[tuple[TestClient, dict, bool]]:
    chat_key = request.param
    service = QAService(api_settings)
    for name, public in COLLECTIONS.items():
        if name != "default":
            service.create_collection(name, public)
    service.close()
    update: dict[str, Any] = {"rate_limit_per_minute": 100_000, "rate_limit_burst": 100_000}
    update |= {"auth_failures_per_minute": 100_000, "auth_failures_burst": 100_000}
    if chat_key:
        update["chat_api_key"] = SecretStr(CHAT)
    with TestClient(create_app(api_settings.model_copy(update=update))) as client:
        headers: dict[str, dict[str, str]] = {
            "none": {},
            "unknown-key": {"Authorization": "Bearer qas_" + "x" * 43},
            "env-admin": ADMIN_HEADERS,
            "env-chat": {"Authorization": f"Bearer {CHAT}"},
        }
        for label, role, scope in (
            ("admin", "admin", []),
            ("manager-hr", "manager", ["hr"]),
            ("chat-hr", "chat", ["hr"]),
        ):
            made = client.post("/v1/keys", json={"role": role, "collections": scope}, headers=ADMIN_HEADERS)
            assert made.status_code == 201, made.text
            headers[label] = {"Authorization": f"Bearer {made.json()['key']}"}
        yield client, headers, chat_key


def test_every_credential_route_and_collection_gets_the_status_the_rules_say(table_client) -> None:  # type: ignore[no-untyped-def]
    client, headers, chat_key = table_client
    # with public chat no bootstrap chat key is configured (its token would be an unknown one)
    credentials = CREDENTIALS if chat_key else [c for c in CREDENTIALS if c != "env-chat"]
    table = [(credential, route, target) for credential in credentials for route in ROUTES for target in TARGETS]
    wrong = []
    for credential, route, target in table:
        response = route.call(client, target, headers[credential])
        want = expected(credential, route, target, chat_key)
        if response.status_code != want:
            wrong.append((credential, route.name, target, response.status_code, want, response.text[:120]))
        if response.status_code == 403:  # one message for every refusal: nothing about what exists
            message = response.json()["error"]["message"]
            assert "missing" not in message and target not in message, message
    assert not wrong, "\n".join(map(str, wrong))
    assert len(table) == len(credentials) * len(ROUTES) * len(TARGETS) >= 300
    # spot checks, in case the rules above and the code share a mistake
    assert _chat(client, "hr", headers["chat-hr"]).status_code == 200
    assert _chat(client, "eng", headers["chat-hr"]).status_code == 403
    assert _chat(client, "missing", headers["chat-hr"]).status_code == 403
    assert _chat(client, "missing", headers["admin"]).status_code == 404
    assert _upload(client, "hr", headers["manager-hr"]).status_code == 201
    assert _upload(client, "hr", headers["chat-hr"]).status_code == 403
    assert _create_key(client, "hr", headers["manager-hr"]).status_code == 403
    assert _chat(client, "pub", headers["none"]).status_code == (401 if chat_key else 200)
