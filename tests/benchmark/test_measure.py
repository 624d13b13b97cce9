"""The bench's in-process measurement indexes from scratch on every run."""

from __future__ import annotations

from pathlib import Path

from qa_service.benchmark.corpus import synthetic_documents
from qa_service.benchmark.measure import index_corpus
from qa_service.settings import Settings


def test_a_second_run_indexes_again_instead_of_reusing_the_first_index(tmp_path: Path) -> None:
    documents = list(synthetic_documents(60))
    first = Settings(index_dir=tmp_path / "index", embedding_model="hash:64", token_code="int8")
    _, before = index_corpus(first, documents)
    # A later run with other settings must measure those, not the index the first one left.
    _, after = index_corpus(first.model_copy(update={"token_code": "int4"}), documents)
    assert before["sentences"] == after["sentences"] == 60
    assert after["index_seconds"] > 0
    manifest = (tmp_path / "index" / "manifest.json").read_text()
    assert '"token_code": "int4"' in manifest
