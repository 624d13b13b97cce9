"""The index describes itself: model, dimension, index type, counts and a corpus content hash."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from qa_service.errors import IndexMismatchError

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    schema_version: str
    model: str
    dimension: int
    faiss_index: str
    generation: int
    documents: int
    sentences: int
    passages: int
    corpus_hash: str
    created_at: float
    updated_at: float
    token_code: str = "int8"  # how token vectors are stored: int4, int8, or pqM:<codebook sha256 prefix>

    def check_compatible(self, model: str, dimension: int, where: Path) -> None:
        if self.model != model or self.dimension != dimension:
            raise IndexMismatchError(
                f"The index in {where} was built with model {self.model!r} (dimension {self.dimension}), "
                f"but the settings ask for {model!r} (dimension {dimension}). Re-index into an empty "
                "directory (`qa-service index PATH --index-dir NEW_DIR`) or set QA_EMBEDDING_MODEL back."
            )

    def write(self, directory: Path) -> None:
        path = directory / MANIFEST_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


_MODULUS = 1 << 256


def _term(content_hash: str) -> int:
    return int.from_bytes(hashlib.sha256(content_hash.encode()).digest(), "big")


def corpus_hash(content_hashes: list[str]) -> str:
    """A hash of the corpus's documents (the multiset of their content hashes), independent of order:
    the sum of each one's SHA-256 modulo 2^256, so a write can update it from what it adds and removes
    (`updated_corpus_hash`) instead of reading every document's hash."""
    return f"{sum(_term(h) for h in content_hashes) % _MODULUS:064x}"


def updated_corpus_hash(current: str, added: list[str], removed: list[str]) -> str:
    total = int(current, 16) + sum(_term(h) for h in added) - sum(_term(h) for h in removed)
    return f"{total % _MODULUS:064x}"


def read_manifest(directory: Path) -> dict[str, object] | None:
    path = directory / MANIFEST_FILE
    if not path.exists():
        return None
    data: dict[str, object] = json.loads(path.read_text())
    return data
