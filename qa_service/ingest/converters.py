"""File -> text through Haystack's converters, with clear errors instead of silent skips."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from haystack.dataclasses import ByteStream

from qa_service.errors import DocumentParseError, UnsupportedFileTypeError
from qa_service.ingest.office import OFFICE, Converted, check_zip, csv_text
from qa_service.ingest.sources import SUPPORTED_SUFFIXES

logger = logging.getLogger(__name__)

_CONVERTERS: dict[str, Any] = {}


def _converter(kind: str) -> Any:
    if kind not in _CONVERTERS:
        from haystack.components.converters import (
            HTMLToDocument,
            MarkdownToDocument,
            PyPDFToDocument,
            TextFileToDocument,
        )

        factories = {
            "text": lambda: TextFileToDocument(encoding="utf-8"),
            "markdown": lambda: MarkdownToDocument(progress_bar=False),
            "html": HTMLToDocument,
            "pdf": PyPDFToDocument,
        }
        _CONVERTERS[kind] = factories[kind]()
    return _CONVERTERS[kind]


def file_kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    kind = SUPPORTED_SUFFIXES.get(suffix)
    if kind is None:
        raise UnsupportedFileTypeError(
            f"Unsupported file type {suffix or '(none)'!r} for {name!r}; supported: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES))
        )
    return kind


def convert(name: str, data: bytes) -> Converted:
    """A file's bytes as plain text, with the locations of its slides and rows where it has them
    (Office and CSV files). Raises on unsupported or unparseable input."""
    kind = file_kind(name)
    if kind == "csv":
        return csv_text(name, data)
    if kind in OFFICE:
        check_zip(name, data)  # before the parser unpacks anything
        try:
            return OFFICE[kind](name, data)
        except DocumentParseError:
            raise
        except Exception as exc:  # a damaged file can fail anywhere inside the parser
            raise DocumentParseError(f"Could not parse {name!r} as {kind}: {exc.__class__.__name__}.") from exc
    return Converted(_plain_text(name, kind, data))


def convert_bytes(name: str, data: bytes) -> str:
    """Extract the plain text of a file's bytes. Raises on unsupported or unparseable input."""
    return convert(name, data).text


def _plain_text(name: str, kind: str, data: bytes) -> str:
    if kind == "text":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentParseError(f"{name!r} is not valid UTF-8 text.") from exc
    else:
        stream = ByteStream(data=data, meta={"file_path": name})
        try:
            documents = _converter(kind).run(sources=[stream])["documents"]
        except Exception as exc:
            raise DocumentParseError(f"Could not parse {name!r} as {kind}: {exc.__class__.__name__}.") from exc
        if not documents:
            raise DocumentParseError(f"Could not parse {name!r} as {kind}: no text could be extracted.")
        text = documents[0].content or ""
    text = text.replace("\r\n", "\n").replace("\x00", "")
    if not text.strip():
        raise DocumentParseError(f"{name!r} contains no text.")
    return text


def convert_file(path: Path) -> str:
    return convert_bytes(path.name, path.read_bytes())


def convert_path(path: Path) -> Converted:
    return convert(path.name, path.read_bytes())
