"""Office and CSV conversion: readable sentences, locations at the right offsets, bounded resources."""

from __future__ import annotations

import io
import zipfile

import pytest

from qa_service.errors import DocumentParseError
from qa_service.ingest import office
from qa_service.ingest.converters import convert
from qa_service.ingest.locations import locate
from qa_service.ingest.office import Converted
from tests.office_files import CSV, REFUNDS, make_docx, make_pptx, make_xlsx


def located(converted: Converted, sentence: str) -> str | None:
    start = converted.text.index(sentence)
    return locate([list(x) for x in converted.locations], start)


def test_docx_paragraphs_headings_and_table_rows() -> None:
    converted = convert("policy.docx", make_docx())
    assert REFUNDS in converted.text
    assert located(converted, REFUNDS) == "section “Refund policy”"
    assert located(converted, "Plan: Team; Price: 45 EUR a month.") == "section “Plans”, table 1 row 3"
    assert located(converted, "Prices include VAT.") == "section “Plans”"


def test_pptx_slides_are_blocks_of_sentences() -> None:
    converted = convert("deck.pptx", make_pptx())
    assert "Roadmap.\nShip the mobile app in March.\nHire two designers." in converted.text
    assert located(converted, "Hire two designers.") == "slide 2"
    assert located(converted, "The data centre lease ends in June.") == "slide 4"
    assert located(converted, "Site: Dublin; Power: 1 MW.") == "slide 3, table row 3"
    assert located(converted, "Mention the backup site in Lisbon.") == "slide 4 notes"
    assert "\n\nRisks." in converted.text  # each slide starts a block: sentences never cross slides


def test_xlsx_rows_become_sentences_named_by_sheet_and_row() -> None:
    converted = convert("sales.xlsx", make_xlsx())
    assert located(converted, "Region: North; Revenue: 1200; Quarter: Q3.") == "Sales row 2"
    assert located(converted, "Name: Bob; Role: Designer.") == "Staff row 4"  # the empty row 3 is skipped
    assert "Region: Region" not in converted.text  # the header row names the columns


def test_csv_rows_sniffed_quoted_and_numbered() -> None:
    converted = convert("staff.csv", CSV)
    assert located(converted, "name: Bob, Jr; team: Ads; office: Paris La Defense.") == "row 3"
    assert located(converted, "name: Carol; team: Billing; office: Rome.") == "row 4"
    semicolons = convert("x.csv", b"city;people\nOslo;700000\nBergen;290000\n")
    assert "city: Bergen; people: 290000." in semicolons.text
    headless = convert("n.csv", b"1,2\n3,4\n")
    assert headless.text == "Column A: 1; Column B: 2.\nColumn A: 3; Column B: 4."


def test_offsets_index_the_stored_text() -> None:
    for name, data in [("a.docx", make_docx()), ("b.pptx", make_pptx()), ("c.xlsx", make_xlsx()), ("d.csv", CSV)]:
        converted = convert(name, data)
        assert [s for s, _ in converted.locations] == sorted(s for s, _ in converted.locations)
        assert all(0 <= s < len(converted.text) for s, _ in converted.locations)
        assert "\r" not in converted.text and "\x00" not in converted.text


@pytest.mark.parametrize("name", ["a.docx", "b.pptx", "c.xlsx"])
def test_corrupt_office_files_raise_parse_errors(name: str) -> None:
    with pytest.raises(DocumentParseError, match="not a valid Office file"):
        convert(name, b"this is not a zip archive")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
    with pytest.raises(DocumentParseError, match=f"Could not parse '{name}'"):
        convert(name, archive.getvalue())
    truncated = make_docx()[:2000]
    with pytest.raises(DocumentParseError):
        convert(name, truncated)


def test_csv_that_is_not_text_is_refused() -> None:
    with pytest.raises(DocumentParseError, match="UTF-8"):
        convert("x.csv", b"\xff\xfe\x00binary")
    with pytest.raises(DocumentParseError, match="NUL"):
        convert("x.csv", b"a,b\n\x00,1\n")
    with pytest.raises(DocumentParseError, match="no text"):
        convert("x.csv", b",,\n,,\n")


def test_zip_bombs_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * 5_000_000)  # 5 MB of zeros pack into a few kilobytes
    data = bomb.getvalue()
    assert len(data) < 50_000
    monkeypatch.setattr(office, "MAX_UNZIPPED_BYTES", 1_000_000)
    parsed: list[str] = []
    monkeypatch.setattr(office, "OFFICE", {"docx": lambda name, data: parsed.append(name)})
    with pytest.raises(DocumentParseError, match="would unpack to 5,000,000 bytes"):
        convert("bomb.docx", data)
    assert parsed == []  # the parser never saw it
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as z:
        for k in range(30):
            z.writestr(f"x{k}", b"")
    monkeypatch.setattr(office, "MAX_ZIP_ENTRIES", 20)
    with pytest.raises(DocumentParseError, match="more than 20 parts"):
        convert("many.xlsx", many.getvalue())


def test_text_and_cell_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(office, "MAX_CELLS", 5)
    with pytest.raises(DocumentParseError, match="more than 5 cells"):
        convert("staff.csv", CSV)
    with pytest.raises(DocumentParseError, match="more than 5 cells"):
        convert("sales.xlsx", make_xlsx())
    monkeypatch.setattr(office, "MAX_CELLS", 2_000_000)
    monkeypatch.setattr(office, "MAX_TEXT_CHARS", 100)
    with pytest.raises(DocumentParseError, match="more than 100 characters"):
        convert("deck.pptx", make_pptx())
