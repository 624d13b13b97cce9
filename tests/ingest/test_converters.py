from pathlib import Path

import pytest

from qa_service.errors import DocumentParseError, InvalidInputError, UnsupportedFileTypeError
from qa_service.ingest.converters import convert_bytes, convert_file
from qa_service.ingest.sources import discover, document_id, title_from_source
from tests.conftest import make_pdf


def test_text_markdown_html_and_pdf_are_converted(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Plain text about otters. Second sentence.")
    (tmp_path / "b.md").write_text("# Otters\n\nOtters **hold hands** while sleeping.\n")
    (tmp_path / "c.html").write_text(
        "<html><head><title>T</title><style>p{}</style></head><body><nav>menu</nav>"
        "<article><p>Sea otters use rocks as tools to open shellfish, a rare behaviour among mammals.</p>"
        "<p>They live in the northern Pacific Ocean along the coasts of Russia, Alaska and California.</p>"
        "</article></body></html>"
    )
    (tmp_path / "d.pdf").write_bytes(make_pdf(["Otters have the densest fur of any animal."]))
    assert convert_file(tmp_path / "a.txt").startswith("Plain text about otters.")
    md = convert_file(tmp_path / "b.md")
    assert "Otters hold hands while sleeping." in md and "**" not in md
    html = convert_file(tmp_path / "c.html")
    assert "use rocks as tools" in html and "<p>" not in html and "p{}" not in html
    assert "densest fur" in convert_file(tmp_path / "d.pdf")


def test_unsupported_broken_and_empty_files_raise_clear_errors() -> None:
    with pytest.raises(UnsupportedFileTypeError, match=r"\.odt"):
        convert_bytes("report.odt", b"x")
    with pytest.raises(DocumentParseError, match=r"broken\.pdf"):
        convert_bytes("broken.pdf", b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(DocumentParseError, match="no text"):
        convert_bytes("empty.txt", b"  \n ")
    with pytest.raises(DocumentParseError, match="UTF-8"):
        convert_bytes("latin.txt", "caf\xe9".encode("latin-1"))


def test_discover_walks_folders_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.md").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "y.txt").write_text("y")
    (tmp_path / "z.bin").write_bytes(b"\0")
    files, scopes = discover([tmp_path])
    assert [f.source for f in files] == ["sub/x.md"]
    assert scopes == [str(tmp_path.resolve())]
    with pytest.raises(InvalidInputError, match="not found"):
        discover([tmp_path / "missing"])
    with pytest.raises(InvalidInputError, match="Unsupported"):
        discover([tmp_path / "z.bin"])


def test_ids_are_stable_and_titles_readable() -> None:
    assert document_id("/a/b.txt") == document_id("/a/b.txt") != document_id("/a/c.txt")
    assert title_from_source("reports/q3_sales-review.md") == "q3 sales review"
    assert title_from_source("000_7957cff8644a918e.txt") == ""
    assert title_from_source("Normans") == "Normans"
