"""Word, PowerPoint, Excel and CSV uploads: the cited sentence and where it came from."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qa_service.service import QAService
from tests.api.conftest import ADMIN_HEADERS
from tests.office_files import CSV, REFUNDS, make_docx, make_pptx, make_xlsx

MIME = "application/octet-stream"


def _upload(client: TestClient, name: str, data: bytes) -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/documents", files={"file": (name, data, MIME)}, headers=ADMIN_HEADERS)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "make", "question", "sentence", "location"),
    [
        ("policy.docx", make_docx, "How many working days until refunds are paid?", REFUNDS, "section “Refund policy”"),
        (
            "deck.pptx",
            make_pptx,
            "When does the data centre lease end?",
            "The data centre lease ends in June.",
            "slide 4",
        ),
        (
            "sales.xlsx",
            make_xlsx,
            "What revenue did the North region make?",
            "Region: North; Revenue: 1200; Quarter: Q3.",
            "Sales row 2",
        ),
        (
            "staff.csv",
            lambda: CSV,
            "Which team is Carol in, Billing?",
            "name: Carol; team: Billing; office: Rome.",
            "row 4",
        ),
    ],
)
def test_office_upload_is_cited_with_its_location(
    client: TestClient,
    name: str,
    make,
    question: str,
    sentence: str,
    location: str,  # type: ignore[no-untyped-def]
) -> None:
    doc = _upload(client, name, make())
    answer = client.post("/v1/chat", json={"message": question}).json()
    cited = answer["citations"][0]
    assert (cited["document_id"], cited["text"], cited["location"]) == (doc["id"], sentence, location)
    text = client.get(f"/v1/documents/{doc['id']}", headers=ADMIN_HEADERS).json()["text"]
    assert text[cited["start"] : cited["end"]] == sentence  # offsets index the stored converted text
    stored = client.get(f"/v1/conversations/{answer['conversation_id']}").json()
    assert stored["turns"][1]["citations"][0]["location"] == location


def test_plain_text_citations_have_no_location(client: TestClient) -> None:
    answer = client.post("/v1/chat", json={"message": "How many troops withdrew from Kherson?"}).json()
    assert answer["citations"] and all(c["location"] is None for c in answer["citations"])


@pytest.mark.parametrize("name", ["broken.docx", "broken.pptx", "broken.xlsx", "broken.csv"])
def test_a_corrupt_file_is_422_and_leaves_the_index_unchanged(client: TestClient, name: str) -> None:
    before = client.get("/v1/documents", headers=ADMIN_HEADERS).json()
    service: QAService = client.app.state.service  # type: ignore[attr-defined]
    generation = service.store.generation
    garbage = b"PK\x03\x04 truncated \xff\xfe\x00\x01" * 20
    response = client.post("/v1/documents", files={"file": (name, garbage, MIME)}, headers=ADMIN_HEADERS)
    assert response.status_code == 422 and response.json()["error"]["code"] == "document_parse_error"
    assert name in response.json()["error"]["message"]
    assert client.get("/v1/documents", headers=ADMIN_HEADERS).json() == before
    assert service.store.generation == generation


def test_a_replaced_office_file_gets_its_new_locations(client: TestClient) -> None:
    import io

    from pptx import Presentation

    _upload(client, "deck.pptx", make_pptx())
    deck = Presentation()
    for title in ("Agenda", "The data centre lease ends in June."):
        deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = title
    out = io.BytesIO()
    deck.save(out)
    _upload(client, "deck.pptx", out.getvalue())  # the same name: replaces the document
    answer = client.post("/v1/chat", json={"message": "When does the data centre lease end?"}).json()
    cited = next(c for c in answer["citations"] if c["source"] == "deck.pptx")
    assert cited["location"] == "slide 2"
