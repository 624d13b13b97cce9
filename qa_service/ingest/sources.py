"""Source files: discovery, stable document ids and content hashes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qa_service.errors import InvalidInputError

SUPPORTED_SUFFIXES = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".csv": "csv",
}


@dataclass(frozen=True)
class SourceFile:
    path: Path
    source: str  # display name: path relative to the indexed directory, or the file name
    origin: str  # resolved absolute path, the identity used for re-index sync


def document_id(origin: str) -> str:
    """Stable id of a document: the same origin always maps to the same id."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()[:16]


def content_hash(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


_NOISE = re.compile(r"^(\d+|[0-9a-f]*\d[0-9a-f]*)$", re.IGNORECASE)


def title_from_source(source: str) -> str:
    """A readable title from a source name ("reports/q3_sales-review.md" -> "q3 sales review");
    numbers and hash-like tokens are dropped, and a name made only of them gives no title."""
    stem = Path(source).stem if Path(source).suffix.lower() in SUPPORTED_SUFFIXES else source
    words = [w for w in re.split(r"[\s_\-.]+", stem) if w and not _NOISE.match(w)]
    return " ".join(words)


def discover(paths: Iterable[Path]) -> tuple[list[SourceFile], list[str]]:
    """Files to index under `paths` and the origins (files or directories) whose contents they define."""
    files: list[SourceFile] = []
    scopes: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InvalidInputError(f"Path not found: {path}")
        root = path.resolve()
        scopes.append(str(root))
        if root.is_file():
            if root.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise InvalidInputError(
                    f"Unsupported file type {root.suffix!r} for {path}; supported: "
                    + ", ".join(sorted(SUPPORTED_SUFFIXES))
                )
            files.append(SourceFile(root, root.name, str(root)))
            continue
        for child in sorted(root.rglob("*")):
            if child.is_file() and child.suffix.lower() in SUPPORTED_SUFFIXES and not _hidden(child, root):
                files.append(SourceFile(child, child.relative_to(root).as_posix(), str(child)))
    return files, scopes


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
