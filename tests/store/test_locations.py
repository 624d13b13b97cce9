"""Slide and row locations on both backends: kept once per document, found from a citation's offset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_service.service import QAService
from tests.office_files import CSV, make_pptx, make_xlsx
from tests.store.test_contract import backend, make_settings  # noqa: F401  (fixtures)


@pytest.fixture
def service(make_settings) -> Iterator[QAService]:  # type: ignore[no-untyped-def]  # noqa: F811
    svc = QAService(make_settings())
    yield svc
    svc.store.close()


def test_uploaded_slides_and_rows_are_cited_with_their_location(service: QAService) -> None:
    deck = service.add_document("deck.pptx", data=make_pptx())
    sheet = service.add_document("sales.xlsx", data=make_xlsx())
    assert [start for start, _ in deck.meta["locations"]][:2] == [0, deck.meta["locations"][1][0]]
    answer = service.ask("When does the data centre lease end?")
    cited = answer.citations[0]
    assert (cited.source, cited.text, cited.location) == ("deck.pptx", "The data centre lease ends in June.", "slide 4")
    row = service.ask("Which role does Bob have, Designer?").citations[0]
    assert (row.document_id, row.location) == (sheet.id, "Staff row 4")
    assert service.location_of(deck.id, 0) == "slide 1" and service.location_of("unknown", 0) is None
    # the locations live on the document, not copied into every sentence
    sentences = service.store.filter_documents({"field": "meta.document_id", "operator": "==", "value": deck.id})
    assert sentences and all("locations" not in s.meta for s in sentences)


def test_indexed_folders_keep_locations_too(service: QAService, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "deck.pptx").write_bytes(make_pptx())
    (folder / "staff.csv").write_bytes(CSV)
    report = service.index_paths([folder])
    assert (report.added, report.failed) == (2, [])
    cited = service.ask("When does the data centre lease end?").citations[0]
    assert (cited.source, cited.location) == ("deck.pptx", "slide 4")
    assert service.ask("Which team is Carol in, Billing?").citations[0].location == "row 4"
