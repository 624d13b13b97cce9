"""The collection routes, and `collection` on the document routes (admin key)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qa_service.service import QAService
from tests.api.conftest import ADMIN_HEADERS

VACATION = "Every employee gets 25 days of paid vacation per year."
RESTART = "To restart the payments database, run the failover script on the standby node."


def _service(client: TestClient) -> QAService:
    return client.app.state.service  # type: ignore[attr-defined,no-any-return]


def _create(client: TestClient, name: str, **extra: object) -> dict[str, object]:
    response = client.post("/v1/collections", json={"name": name, **extra}, headers=ADMIN_HEADERS)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_create_list_rename_toggle_delete(client: TestClient) -> None:
    created = _create(client, "hr")
    assert created["name"] == "hr" and created["public"] is False
    assert (created["documents"], created["sentences"]) == (0, 0)
    assert isinstance(created["id"], str) and created["id"] != "default"
    assert _create(client, "web", public=True)["public"] is True

    listed = client.get("/v1/collections", headers=ADMIN_HEADERS).json()["collections"]
    assert [(c["name"], c["public"]) for c in listed] == [("default", True), ("hr", False), ("web", True)]
    assert listed[0]["id"] == "default" and listed[0]["documents"] == 1  # the seed file of the fixture
    assert client.get("/v1/collections/hr", headers=ADMIN_HEADERS).json() == created

    renamed = client.patch("/v1/collections/hr", json={"name": "people"}, headers=ADMIN_HEADERS)
    assert renamed.status_code == 200 and renamed.json()["id"] == created["id"]
    assert client.get("/v1/collections/hr", headers=ADMIN_HEADERS).status_code == 404
    toggled = client.patch("/v1/collections/people", json={"public": True}, headers=ADMIN_HEADERS).json()
    assert toggled["public"] is True and toggled["name"] == "people"

    assert client.delete("/v1/collections/people", headers=ADMIN_HEADERS).status_code == 204
    assert client.delete("/v1/collections/people", headers=ADMIN_HEADERS).status_code == 404
    names = [c["name"] for c in client.get("/v1/collections", headers=ADMIN_HEADERS).json()["collections"]]
    assert names == ["default", "web"]


@pytest.mark.parametrize("name", ["", "HR", "hr team", "hr_x", "a" * 65, 7])
def test_bad_names_get_422_with_the_rule(client: TestClient, name: object) -> None:
    response = client.post("/v1/collections", json={"name": name}, headers=ADMIN_HEADERS)
    assert response.status_code == 422
    assert "[a-z0-9-]" in response.json()["error"]["message"] or "name" in response.json()["error"]["message"]
    if isinstance(name, str) and name:
        for method, path in (("GET", f"/v1/collections/{name}"), ("DELETE", f"/v1/collections/{name}")):
            got = client.request(method, path, headers=ADMIN_HEADERS)
            assert got.status_code == 422 and "[a-z0-9-]" in got.json()["error"]["message"]
        listed = client.get("/v1/documents", params={"collection": name}, headers=ADMIN_HEADERS)
        assert listed.status_code == 422 and "[a-z0-9-]" in listed.json()["error"]["message"]


def test_conflicts_and_the_protected_default(client: TestClient) -> None:
    _create(client, "hr")
    _create(client, "eng")
    duplicate = client.post("/v1/collections", json={"name": "hr"}, headers=ADMIN_HEADERS)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "collection_exists"
    taken = client.patch("/v1/collections/eng", json={"name": "hr"}, headers=ADMIN_HEADERS)
    assert taken.status_code == 409
    for response in (
        client.delete("/v1/collections/default", headers=ADMIN_HEADERS),
        client.patch("/v1/collections/default", json={"name": "main"}, headers=ADMIN_HEADERS),
    ):
        assert response.status_code == 409 and response.json()["error"]["code"] == "collection_protected"
        assert "default" in response.json()["error"]["message"]
    private = client.patch("/v1/collections/default", json={"public": False}, headers=ADMIN_HEADERS)
    assert private.status_code == 200 and private.json()["public"] is False
    assert client.get("/v1/collections/missing", headers=ADMIN_HEADERS).status_code == 404
    assert client.patch("/v1/collections/missing", json={"public": True}, headers=ADMIN_HEADERS).status_code == 404


def test_collection_changes_need_the_admin_key_and_listings_show_what_the_caller_may_ask(client: TestClient) -> None:
    _create(client, "hr")  # private
    listed = client.get("/v1/collections")  # public chat: anonymous callers see the public collections only
    assert listed.status_code == 200 and [c["name"] for c in listed.json()["collections"]] == ["default"]
    assert client.get("/v1/collections/default").status_code == 200
    assert client.get("/v1/collections/hr").status_code == 403  # the same answer as for a missing one
    assert client.get("/v1/collections/missing").status_code == 403
    admin = client.get("/v1/collections", headers=ADMIN_HEADERS).json()["collections"]
    assert sorted(c["name"] for c in admin) == ["default", "hr"]
    for method, path, body in (
        ("POST", "/v1/collections", {"name": "eng"}),
        ("PATCH", "/v1/collections/default", {"public": False}),
        ("DELETE", "/v1/collections/default", None),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code in (401, 403), (method, path, response.status_code)
    assert [c.name for c in _service(client).collections()] == ["default", "hr"]  # nothing was created


def test_documents_go_to_and_are_addressed_in_their_collection(client: TestClient) -> None:
    _create(client, "hr")
    _create(client, "eng")
    hr_doc = client.post(
        "/v1/documents", json={"source": "leave.txt", "text": VACATION, "collection": "hr"}, headers=ADMIN_HEADERS
    ).json()
    assert hr_doc["collection"] == "hr"
    eng_doc = client.post(
        "/v1/documents",
        files={"file": ("restart.txt", RESTART.encode(), "text/plain")},
        data={"collection": "eng"},
        headers=ADMIN_HEADERS,
    )
    assert eng_doc.status_code == 201, eng_doc.text
    eng_id = eng_doc.json()["id"]
    assert eng_doc.json()["collection"] == "eng"

    def listed(collection: str | None) -> list[str]:
        params = {"collection": collection} if collection else {}
        response = client.get("/v1/documents", params=params, headers=ADMIN_HEADERS)
        assert response.status_code == 200
        return [d["source"] for d in response.json()["documents"]]

    assert listed("hr") == ["leave.txt"] and listed("eng") == ["restart.txt"]
    assert "leave.txt" not in listed(None) and "restart.txt" not in listed("default")
    counts = {
        c["name"]: c["documents"] for c in client.get("/v1/collections", headers=ADMIN_HEADERS).json()["collections"]
    }
    assert counts == {"default": 1, "hr": 1, "eng": 1}

    one = client.get(f"/v1/documents/{eng_id}", params={"collection": "eng"}, headers=ADMIN_HEADERS)
    assert one.status_code == 200 and one.json()["text"].startswith("To restart")
    for params in ({}, {"collection": "hr"}):  # not in default, not in hr
        assert client.get(f"/v1/documents/{eng_id}", params=params, headers=ADMIN_HEADERS).status_code == 404
        assert client.delete(f"/v1/documents/{eng_id}", params=params, headers=ADMIN_HEADERS).status_code == 404
    span = {"start": 0, "end": len(RESTART), "collection": "eng"}
    context = client.get(f"/v1/documents/{eng_id}/context", params=span, headers=ADMIN_HEADERS)
    assert context.status_code == 200 and context.json()["sentence"] == RESTART
    assert client.get(f"/v1/documents/{eng_id}/context", params=span).status_code == 403  # eng is private
    assert client.get(f"/v1/documents/{eng_id}/context", params={"start": 0, "end": len(RESTART)}).status_code == 404

    answer = _service(client).ask("How do I restart the payments database?", collection="eng")
    assert [c.document_id for c in answer.citations] == [eng_id]
    assert (
        client.delete(f"/v1/documents/{eng_id}", params={"collection": "eng"}, headers=ADMIN_HEADERS).status_code == 204
    )
    assert listed("eng") == []


def test_uploads_to_a_missing_collection_are_404_and_write_nothing(client: TestClient) -> None:
    before = client.get("/v1/documents", headers=ADMIN_HEADERS).json()
    json_upload = client.post(
        "/v1/documents", json={"source": "a.txt", "text": VACATION, "collection": "nope"}, headers=ADMIN_HEADERS
    )
    form_upload = client.post(
        "/v1/documents",
        files={"file": ("a.txt", VACATION.encode(), "text/plain")},
        data={"collection": "nope"},
        headers=ADMIN_HEADERS,
    )
    for response in (json_upload, form_upload):
        assert response.status_code == 404 and response.json()["error"]["code"] == "collection_not_found"
    bad = client.post(
        "/v1/documents", json={"source": "a.txt", "text": VACATION, "collection": "No!"}, headers=ADMIN_HEADERS
    )
    assert bad.status_code == 422 and "[a-z0-9-]" in bad.json()["error"]["message"]
    assert client.get("/v1/documents", params={"collection": "nope"}, headers=ADMIN_HEADERS).status_code == 404
    assert client.get("/v1/documents", headers=ADMIN_HEADERS).json() == before
    assert [c["name"] for c in client.get("/v1/collections", headers=ADMIN_HEADERS).json()["collections"]] == [
        "default"
    ]


def test_deleting_a_collection_removes_its_documents_only(client: TestClient) -> None:
    _create(client, "hr")
    client.post(
        "/v1/documents", json={"source": "leave.txt", "text": VACATION, "collection": "hr"}, headers=ADMIN_HEADERS
    )
    default_before = client.get("/v1/documents", headers=ADMIN_HEADERS).json()
    assert client.delete("/v1/collections/hr", headers=ADMIN_HEADERS).status_code == 204
    assert client.get("/v1/documents", params={"collection": "hr"}, headers=ADMIN_HEADERS).status_code == 404
    assert client.get("/v1/documents", headers=ADMIN_HEADERS).json() == default_before
    recreated = _create(client, "hr")
    assert recreated["documents"] == 0


def _team_with_history(client: TestClient, name: str, text: str) -> dict[str, object]:
    """A collection with a document, an answered (and rated) question, and a chat key of its own."""
    _create(client, name)
    upload = {"source": f"{name}.txt", "text": text, "collection": name}
    assert client.post("/v1/documents", json=upload, headers=ADMIN_HEADERS).status_code == 201
    answer = client.post("/v1/chat", json={"message": text, "collection": name}, headers=ADMIN_HEADERS).json()
    rating = {"conversation_id": answer["conversation_id"], "turn": answer["turn"], "rating": "down"}
    assert client.post("/v1/feedback", json=rating, headers=ADMIN_HEADERS).status_code == 201
    key = client.post("/v1/keys", json={"role": "chat", "collections": [name]}, headers=ADMIN_HEADERS).json()
    return {"conversation": answer["conversation_id"], "key": key["key"], "id": key["id"]}


def test_deleting_a_collection_takes_everything_of_it_and_nothing_else(client: TestClient) -> None:
    shared, keys = client.app.state.shared, client.app.state.keys  # type: ignore[attr-defined]
    hr, eng = _team_with_history(client, "hr", VACATION), _team_with_history(client, "eng", RESTART)
    both = client.post("/v1/keys", json={"role": "chat", "collections": ["hr", "eng"]}, headers=ADMIN_HEADERS).json()
    for channel, name in (("CHR", "hr"), ("CENG", "eng")):
        client.put(f"/v1/slack/channels/{channel}", json={"collection": name}, headers=ADMIN_HEADERS)
    hr_id = _service(client).collection("hr").id
    logged_before = {q.conversation_id for q in shared.questions.questions(0, 2e9)}
    assert {hr["conversation"], eng["conversation"]} <= logged_before

    assert client.delete("/v1/collections/hr", headers=ADMIN_HEADERS).status_code == 204
    assert (
        shared.conversations.get(hr["conversation"]) is None and shared.conversations.feedback(hr["conversation"]) == []
    )
    assert shared.conversations.get(eng["conversation"]) is not None
    assert len(shared.conversations.feedback(eng["conversation"])) == 1
    logged_after = {q.conversation_id for q in shared.questions.questions(0, 2e9)}
    assert logged_after == logged_before - {hr["conversation"]}
    assert shared.conversations.delete_collection(hr_id) == 0  # nothing of it is left
    # keys: hr's own key is revoked, the key of both keeps eng; channel mappings follow
    assert keys.get(hr["id"]).revoked and keys.get(both["id"]).collections == ("eng",)
    assert not keys.get(eng["id"]).revoked
    hr_key = {"Authorization": f"Bearer {hr['key']}"}
    assert client.post("/v1/chat", json={"message": "Vacation?", "collection": "hr"}, headers=hr_key).status_code == 401
    mapped = {m.channel: m.collection for m in shared.slack_channels.mappings()}
    assert mapped == {"CENG": "eng"}
    # a new collection under the old name starts empty and no old key reaches it
    _create(client, "hr")
    assert client.get("/v1/documents", params={"collection": "hr"}, headers=ADMIN_HEADERS).json()["documents"] == []
    both_key = {"Authorization": f"Bearer {both['key']}"}
    assert (
        client.post("/v1/chat", json={"message": "Vacation?", "collection": "hr"}, headers=both_key).status_code == 403
    )


def test_a_rename_keeps_keys_channels_and_conversations(client: TestClient) -> None:
    hr = _team_with_history(client, "hr", VACATION)
    client.put("/v1/slack/channels/CHR", json={"collection": "hr"}, headers=ADMIN_HEADERS)
    assert client.patch("/v1/collections/hr", json={"name": "people"}, headers=ADMIN_HEADERS).status_code == 200
    key = {"Authorization": f"Bearer {hr['key']}"}
    asked = client.post("/v1/chat", json={"message": VACATION, "collection": "people"}, headers=key)
    assert asked.status_code == 200 and not asked.json()["abstained"]
    follow_up = {"message": "And?", "collection": "people", "conversation_id": hr["conversation"]}
    assert client.post("/v1/chat", json=follow_up, headers=key).json()["conversation_id"] == hr["conversation"]
    shared = client.app.state.shared  # type: ignore[attr-defined]
    assert {m.channel: m.collection for m in shared.slack_channels.mappings()} == {"CHR": "people"}


def test_a_restart_finishes_a_delete_a_crash_interrupted(api_settings) -> None:  # type: ignore[no-untyped-def]
    from qa_service.api.app import create_app

    with TestClient(create_app(api_settings)) as client:
        hr = _team_with_history(client, "hr", VACATION)
        _service(client).delete_collection("hr")  # the store's part only, as a crash right after it leaves
    with TestClient(create_app(api_settings)) as client:
        shared, keys = client.app.state.shared, client.app.state.keys  # type: ignore[attr-defined]
        assert shared.conversations.get(hr["conversation"]) is None
        assert [q for q in shared.questions.questions(0, 2e9) if q.conversation_id == hr["conversation"]] == []
        assert keys.get(hr["id"]).revoked
