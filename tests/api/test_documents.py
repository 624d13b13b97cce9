from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN_HEADERS
from tests.conftest import make_pdf

QUESTION = "Which bird can swim but cannot fly?"
PENGUINS = "Penguins are birds that cannot fly. Emperor penguins dive deeper than 500 metres."


def test_upload_ask_delete_round_trip(client: TestClient) -> None:
    created = client.post("/v1/documents", json={"source": "penguins.txt", "text": PENGUINS}, headers=ADMIN_HEADERS)
    assert created.status_code == 201
    doc = created.json()
    assert doc["source"] == "penguins.txt" and doc["sentences"] == 2
    answer = client.post("/v1/chat", json={"message": "How deep do emperor penguins dive?"}).json()
    cited = answer["citations"][0]
    assert cited["document_id"] == doc["id"] and "500 metres" in cited["text"]
    detail = client.get(f"/v1/documents/{doc['id']}", headers=ADMIN_HEADERS).json()
    assert detail["text"][cited["start"] : cited["end"]] == cited["text"]
    listed = client.get("/v1/documents", headers=ADMIN_HEADERS).json()["documents"]
    assert {d["source"] for d in listed} >= {"penguins.txt"} and len(listed) == 2

    assert client.delete(f"/v1/documents/{doc['id']}", headers=ADMIN_HEADERS).status_code == 204
    after = client.post("/v1/chat", json={"message": "How deep do emperor penguins dive?"}).json()
    assert all(c["document_id"] != doc["id"] for c in after["citations"])
    assert client.get(f"/v1/documents/{doc['id']}", headers=ADMIN_HEADERS).status_code == 404
    assert client.delete(f"/v1/documents/{doc['id']}", headers=ADMIN_HEADERS).status_code == 404


def test_multipart_upload_of_each_type(client: TestClient) -> None:
    files = {
        "notes.md": (b"# Otters\n\nOtters hold hands while sleeping.", "text/markdown"),
        "page.html": (
            b"<html><body><article><p>Sea otters use rocks as tools to open shellfish, which is rare "
            b"among mammals.</p></article></body></html>",
            "text/html",
        ),
        "fur.pdf": (make_pdf(["Otters have the densest fur of any animal."]), "application/pdf"),
    }
    for name, (data, mime) in files.items():
        response = client.post("/v1/documents", files={"file": (name, data, mime)}, headers=ADMIN_HEADERS)
        assert response.status_code == 201, response.text
        assert response.json()["source"] == name
    reupload = client.post(
        "/v1/documents",
        files={"file": ("notes.md", b"Otters also eat urchins.", "text/markdown")},
        headers=ADMIN_HEADERS,
    )
    assert reupload.status_code == 201
    sources = [d["source"] for d in client.get("/v1/documents", headers=ADMIN_HEADERS).json()["documents"]]
    assert sources.count("notes.md") == 1


def test_bad_uploads_are_rejected_and_leave_the_index_unchanged(client: TestClient) -> None:
    before = client.get("/v1/documents", headers=ADMIN_HEADERS).json()
    cases = [
        ({"files": {"file": ("report.odt", b"PK\x03\x04", "application/octet-stream")}}, 415, "unsupported_file_type"),
        ({"files": {"file": ("broken.pdf", b"%PDF-1.4 nonsense", "application/pdf")}}, 422, "document_parse_error"),
        ({"files": {"file": ("empty.txt", b"   ", "text/plain")}}, 422, "document_parse_error"),
        ({"json": {"source": "x.txt", "text": "   "}}, 422, "invalid_input"),
        ({"content": b"plain body", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"files": {"other": ("a.txt", b"hello", "text/plain")}}, 422, "invalid_input"),
    ]
    for kwargs, status, code in cases:
        headers = {**ADMIN_HEADERS, **kwargs.pop("headers", {})}  # type: ignore[arg-type]
        response = client.post("/v1/documents", headers=headers, **kwargs)  # type: ignore[arg-type]
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
        assert response.json()["error"]["message"]
    assert client.get("/v1/documents", headers=ADMIN_HEADERS).json() == before


def test_upload_size_limit_is_413(client: TestClient) -> None:
    limit = client.app.state.settings.max_upload_bytes  # type: ignore[attr-defined]
    big = b"word " * (limit // 5 + 10)
    response = client.post("/v1/documents", files={"file": ("big.txt", big, "text/plain")}, headers=ADMIN_HEADERS)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_queries_keep_answering_while_an_upload_is_indexed(client: TestClient) -> None:
    import threading
    import time

    service = client.app.state.service  # type: ignore[attr-defined]
    original = service.indexer._embed
    started = threading.Event()

    def slow_embed(docs):  # type: ignore[no-untyped-def]
        started.set()
        time.sleep(1.5)
        return original(docs)

    service.indexer._embed = slow_embed
    upload = threading.Thread(
        target=lambda: client.post(
            "/v1/documents", json={"source": "penguins.txt", "text": PENGUINS}, headers=ADMIN_HEADERS
        )
    )
    upload.start()
    assert started.wait(10)
    began = time.monotonic()
    during = [client.post("/v1/chat", json={"message": "How many troops withdrew from Kherson?"}) for _ in range(3)]
    elapsed = time.monotonic() - began
    assert upload.is_alive() and elapsed < 1.5  # answered while the upload was still embedding
    assert all(r.status_code == 200 and "20,000 to 30,000" in r.json()["citations"][0]["text"] for r in during)
    assert "penguins.txt" not in {
        d["source"] for d in client.get("/v1/documents", headers=ADMIN_HEADERS).json()["documents"]
    }
    upload.join(timeout=30)
    after = client.post("/v1/chat", json={"message": "How deep do emperor penguins dive?"}).json()
    assert "500 metres" in after["citations"][0]["text"]


def test_deleting_an_unknown_document_is_404_and_writes_nothing(client: TestClient) -> None:
    store = client.app.state.service.store  # type: ignore[attr-defined]
    before = store.generation
    response = client.delete("/v1/documents/no-such-document", headers=ADMIN_HEADERS)
    assert response.status_code == 404 and response.json()["error"]["code"] == "document_not_found"
    assert store.generation == before


def test_each_document_request_counts_once_against_the_rate_limit(api_settings) -> None:  # type: ignore[no-untyped-def]
    from qa_service.api.app import create_app

    limited = api_settings.model_copy(update={"rate_limit_burst": 3, "rate_limit_per_minute": 1})
    with TestClient(create_app(limited)) as client:
        statuses = [client.get("/v1/documents", headers=ADMIN_HEADERS).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
