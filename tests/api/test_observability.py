from fastapi.testclient import TestClient


def test_request_id_is_echoed_or_assigned(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assigned = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert assigned.headers["x-request-id"] != "bad id with spaces" and len(assigned.headers["x-request-id"]) == 32


def test_readyz_and_metrics(client: TestClient) -> None:
    assert client.get("/readyz").json()["status"] == "ready"
    client.post("/v1/chat", json={"message": "How many troops withdrew from Kherson?"})
    client.post("/v1/chat", json={"message": ""})
    text = client.get("/metrics").text
    assert 'qa_http_requests_total{method="POST",route="/v1/chat",status="200"} 1.0' in text
    assert 'qa_http_requests_total{method="POST",route="/v1/chat",status="422"} 1.0' in text
    assert 'qa_answers_total{channel="chat"} 1.0' in text
    assert "qa_http_request_duration_seconds_bucket" in text
    assert "qa_index_sentences 15.0" in text and "qa_index_documents 1.0" in text


def test_readyz_is_503_until_the_service_is_loaded(fake_settings) -> None:  # type: ignore[no-untyped-def]
    from qa_service.api.app import create_app

    with TestClient(create_app(fake_settings, load_service=False)) as c:
        response = c.get("/readyz")
    assert response.status_code == 503 and response.json()["error"]["code"] == "index_not_found"
