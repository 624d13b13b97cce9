"""Word, PowerPoint, Excel and CSV files -> readable text with locations ('slide 4', 'Sheet1 row 3').

Built on python-docx, python-pptx and openpyxl directly rather than Haystack's converters: those
flatten tables into CSV or markdown text (not sentences), report no location for a piece of text,
and the XLSX one needs pandas. Here a slide is one block of sentences, a table or sheet row becomes
one sentence ("Plan: Basic; Price: 10 EUR."), and every slide, row and section records where its
text starts, so a citation's offset names its place (`qa_service.ingest.locations`).

Bounded before parsing: a zip archive (docx/pptx/xlsx) whose members would unpack to more than
MAX_UNZIPPED_BYTES, or with more than MAX_ZIP_ENTRIES members, is refused; XML is parsed without
entity expansion (python-docx/pptx turn it off; openpyxl uses defusedxml); text and spreadsheet
cells are capped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from qa_service.errors import DocumentParseError

MAX_UNZIPPED_BYTES = 200_000_000
MAX_ZIP_ENTRIES = 10_000
MAX_TEXT_CHARS = 20_000_000
MAX_CELLS = 2_000_000
MAX_COLUMNS = 256

_SPACE = re.compile(r"\s+")
_END = re.compile(r"[.!?:;…]['\"”’)\]]*$")


@dataclass
class Converted:
    """Plain text, and `(offset, label)` where each located piece starts (sorted by offset)."""

    text: str
    locations: list[tuple[int, str]] = field(default_factory=list)


class _Builder:
    """Text assembled from blocks (separated by a blank line) of lines; records locations."""

    def __init__(self, name: str) -> None:
        self.name, self.size = name, 0
        self.parts: list[str] = []
        self.locations: list[tuple[int, str]] = []
        self._block_open = False

    def _append(self, piece: str) -> None:
        self.parts.append(piece)
        self.size += len(piece)
        if self.size > MAX_TEXT_CHARS:
            raise DocumentParseError(f"{self.name!r} holds more than {MAX_TEXT_CHARS:,} characters of text.")

    def end_block(self) -> None:
        self._block_open = False

    def line(self, text: str, label: str | None, sentence: bool = True) -> None:
        """One line of the current block (a new block when none is open)."""
        text = clean(text)
        if not text:
            return
        if sentence and not _END.search(text):
            text += "."
        if self.parts:
            self._append("\n" if self._block_open else "\n\n")
        if label is not None and (not self.locations or self.locations[-1][1] != label):
            self.locations.append((self.size, label))
        self._append(text)
        self._block_open = True

    def paragraph(self, text: str, label: str | None) -> None:
        """A block of its own (a document paragraph keeps its own punctuation)."""
        self.end_block()
        self.line(text, label, sentence=False)
        self.end_block()

    def result(self) -> Converted:
        text = "".join(self.parts)
        if not text.strip():
            raise DocumentParseError(f"{self.name!r} contains no text.")
        return Converted(text, self.locations)


def clean(value: Any) -> str:
    """A cell or paragraph as one line: control characters and line breaks become spaces."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, dt.datetime):
        text = value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    elif isinstance(value, dt.date):
        text = value.isoformat()
    else:
        text = str(value)
    return _SPACE.sub(" ", text.replace("\x00", " ")).strip()


def row_sentence(header: list[str], values: Iterable[Any]) -> str:
    """'Plan: Basic; Price: 10 EUR' (columns without a header are named by letter: 'Column C')."""
    parts = []
    for k, value in enumerate(values):
        text = clean(value)
        if text:
            name = header[k] if k < len(header) and header[k] else f"Column {_letters(k)}"
            parts.append(f"{name}: {text}")
    return "; ".join(parts)


def _letters(k: int) -> str:
    out = ""
    k += 1
    while k:
        k, rem = divmod(k - 1, 26)
        out = chr(65 + rem) + out
    return out


def check_zip(name: str, data: bytes) -> None:
    """Refuse archives that are not zip files or would unpack too big (checked before any parsing)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DocumentParseError(f"{name!r} is not a valid Office file (not a zip archive).") from exc
    if len(members) > MAX_ZIP_ENTRIES:
        raise DocumentParseError(f"{name!r} has more than {MAX_ZIP_ENTRIES:,} parts; refusing to unpack it.")
    total = sum(m.file_size for m in members)
    if total > MAX_UNZIPPED_BYTES:
        raise DocumentParseError(
            f"{name!r} would unpack to {total:,} bytes (limit {MAX_UNZIPPED_BYTES:,}); refusing to unpack it."
        )


# --- Word --------------------------------------------------------------------------------------------
def docx_text(name: str, data: bytes) -> Converted:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    out, section, tables = _Builder(name), None, 0
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            tables += 1
            where = f"section “{section}”, table {tables}" if section else f"table {tables}"
            _table(out, [[cell.text for cell in row.cells] for row in item.rows], where)
            continue
        style = (item.style.name if item.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":  # a heading starts a section
            section = clean(item.text) or section
        out.paragraph(item.text, f"section “{section}”" if section else None)
    return out.result()


def _table(out: _Builder, rows: list[list[str]], label: str) -> None:
    """A table: the first row names the columns; every later row is one sentence."""
    out.end_block()
    rows = [_dedupe_merged(r) for r in rows]
    header = [clean(c) for c in rows[0]] if rows else []
    for number, row in enumerate(rows[1:], start=2):
        out.line(row_sentence(header, row), f"{label} row {number}")
    out.end_block()


def _dedupe_merged(cells: list[str]) -> list[str]:
    """Merged cells repeat their text in python-docx and python-pptx; keep the first of a run."""
    return [c if k == 0 or c != cells[k - 1] else "" for k, c in enumerate(cells)]


# --- PowerPoint --------------------------------------------------------------------------------------
def pptx_text(name: str, data: bytes) -> Converted:
    from pptx import Presentation

    presentation = Presentation(io.BytesIO(data))
    out = _Builder(name)
    for number, slide in enumerate(presentation.slides, start=1):
        out.end_block()
        label = f"slide {number}"
        for kind, content in _shapes(slide.shapes):
            if kind == "text":
                out.line(content, label)
            else:
                header = [clean(c) for c in content[0]] if content else []
                for row_no, row in enumerate(content[1:], start=2):
                    out.line(row_sentence(header, row), f"{label}, table row {row_no}")
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            for paragraph in slide.notes_slide.notes_text_frame.paragraphs:
                out.line(paragraph.text, f"{label} notes")
    return out.result()


def _shapes(shapes: Any) -> Iterator[tuple[str, Any]]:
    """('text', paragraph) and ('table', rows) in slide order; groups are walked into."""
    for shape in shapes:
        if hasattr(shape, "shapes"):  # a group
            yield from _shapes(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [_dedupe_merged([cell.text for cell in row.cells]) for row in shape.table.rows]
            yield "table", rows
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            for paragraph in shape.text_frame.paragraphs:
                yield "text", paragraph.text


# --- Excel and CSV -----------------------------------------------------------------------------------
def xlsx_text(name: str, data: bytes) -> Converted:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out, cells = _Builder(name), 0
    try:
        for sheet in workbook.worksheets:
            out.end_block()
            header: list[str] | None = None
            width = min(sheet.max_column or MAX_COLUMNS, MAX_COLUMNS)
            for row in sheet.iter_rows(max_col=width):
                cells += len(row)
                if cells > MAX_CELLS:
                    raise DocumentParseError(
                        f"{name!r} has more than {MAX_CELLS:,} cells; split it into smaller files."
                    )
                values = [c.value for c in row]
                number = next((c.row for c in row if getattr(c, "row", None)), None)
                if number is None or not any(clean(v) for v in values):
                    continue
                if header is None:
                    header = _header(values)
                    if header:
                        continue
                out.line(row_sentence(header, values), f"{sheet.title} row {number}")
    finally:
        workbook.close()
    return out.result()


def _check_cells(name: str, cells: int) -> None:
    if cells > MAX_CELLS:
        raise DocumentParseError(f"{name!r} has more than {MAX_CELLS:,} cells; split it into smaller files.")


def _header(values: list[Any]) -> list[str]:
    """The first row names the columns when all its filled cells are text; else columns go by letter."""
    filled = [v for v in values if clean(v)]
    return [clean(v) for v in values] if all(isinstance(v, str) for v in filled) else []


def csv_text(name: str, data: bytes) -> Converted:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentParseError(f"{name!r} is not valid UTF-8 text.") from exc
    if "\x00" in text:
        raise DocumentParseError(f"{name!r} is not a text file (it contains NUL bytes).")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    out, header, cells = _Builder(name), None, 0
    try:
        for number, values in enumerate(csv.reader(io.StringIO(text), dialect), start=1):
            cells += len(values)
            _check_cells(name, cells)
            if not any(v.strip() for v in values):
                continue
            if header is None:
                header = _header(values) if not all(_numeric(v) for v in values if v.strip()) else []
                if header:
                    continue
            out.line(row_sentence(header, values[:MAX_COLUMNS]), f"row {number}")
    except csv.Error as exc:
        raise DocumentParseError(f"Could not parse {name!r} as CSV: {exc}.") from exc
    return out.result()


def _numeric(value: str) -> bool:
    try:
        float(value.replace(",", ""))
    except ValueError:
        return False
    return True


OFFICE = {"docx": docx_text, "pptx": pptx_text, "xlsx": xlsx_text}
