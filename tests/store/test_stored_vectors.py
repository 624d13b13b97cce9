"""The vectors SQLite keeps (`QA_VECTOR_STORAGE`): float16 rows are half the bytes, read back as
float32 within half-precision error, mix with float32 rows written before, and serve every reader of
them (rebuilding FAISS, filtered search, the ranker's vectors, `filter_documents`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from qa_service.errors import IndexMismatchError
from qa_service.indexer import TextSource
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.store.sentences import blob, unblob, unblob_many
from tests.store.test_contract import DOCS
from tests.store.test_document_store import ENC, open_store, source


def _widths(path: Path, table: str) -> list[int]:
    with sqlite3.connect(path / "store.sqlite") as conn:
        return [int(r[0]) for r in conn.execute(f"SELECT length(embedding) FROM {table} ORDER BY id")]


def test_a_blob_reads_back_at_either_width() -> None:
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    vector /= np.linalg.norm(vector)
    wide, narrow = blob(vector), blob(vector, "float16")
    assert (len(wide), len(narrow)) == (1536, 768)
    assert np.array_equal(unblob(wide, 384), vector)
    restored = unblob(narrow, 384)
    assert restored.dtype == np.float32 and np.abs(restored - vector).max() < 5e-4
    mixed = unblob_many([wide, narrow, narrow], 384)
    assert mixed.shape == (3, 384) and mixed.dtype == np.float32
    assert np.array_equal(mixed[0], vector) and np.array_equal(mixed[2], restored)
    assert np.array_equal(unblob_many([narrow, narrow], 384), np.stack([restored, restored]))
    assert unblob_many([], 384).shape == (0, 384)
    with pytest.raises(IndexMismatchError, match="not float32 or float16 of dimension 384"):
        unblob(wide[:-4], 384)


def test_float16_rows_mix_with_float32_rows_and_serve_every_reader(tmp_path: Path) -> None:
    open_store(tmp_path).apply([source("a", ["Otters hold hands.", "They sleep on water."])], [])
    store = open_store(tmp_path, vector_storage="float16")
    store.apply([source("b", ["Cats purr loudly.", "Dogs bark at night."])], [])
    assert _widths(tmp_path, "sentences") == [64, 64, 32, 32]  # 16 dimensions: 4 and 2 bytes each
    assert _widths(tmp_path, "passages") == [64, 32]
    # filtered (exact) search over both widths
    only_b = {"field": "meta.document_id", "operator": "==", "value": "b"}
    hit = store.dense_sentences(ENC.embed(["cats purr loudly"])[0], 1, only_b)[0]
    assert store.sentence_rows([hit[0]])[0]["text"] == "Cats purr loudly." and hit[1] == pytest.approx(1.0, abs=1e-3)
    docs = {d.content: np.array(d.embedding) for d in store.filter_documents()}
    assert np.abs(docs["Dogs bark at night."] - ENC.embed(["Dogs bark at night."])[0]).max() < 1e-3
    assert np.array_equal(docs["Otters hold hands."], ENC.embed(["Otters hold hands."])[0])
    assert set(store.passage_vectors([1, 2])) == {1, 2}
    # a rebuild (another index type) reads both widths back into FAISS
    rebuilt = open_store(tmp_path, "HNSW8", vector_storage="float16")
    for text in ("They sleep on water.", "Dogs bark at night."):
        row = rebuilt.sentence_rows([rebuilt.dense_sentences(ENC.embed([text])[0], 1)[0][0]])[0]
        assert row["text"] == text
    assert rebuilt.to_dict()["init_parameters"]["vector_storage"] == "float16"


def test_an_unknown_vector_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vector_storage must be one of"):
        open_store(tmp_path, vector_storage="bfloat16")


def test_the_setting_reaches_the_store_and_answers_are_those_of_float32(tmp_path: Path) -> None:
    texts = [TextSource(source=name, text=text, origin=f"test:{name}") for name, text in DOCS.items()]
    settings = Settings(index_dir=tmp_path / "index", embedding_model="hash:64")
    assert settings.vector_storage == "float16"  # the default
    narrow, wide = (
        QAService(settings),
        QAService(settings.model_copy(update={"index_dir": tmp_path / "wide", "vector_storage": "float32"})),
    )
    for service in (narrow, wide):
        service.index_texts(texts)
    assert set(_widths(tmp_path / "index", "sentences")) == {128} and set(_widths(tmp_path / "wide", "sentences")) == {
        256
    }
    for question in QUESTIONS:
        a, b = narrow.ask(question), wide.ask(question)
        assert (a.abstained, [c.text for c in a.citations]) == (b.abstained, [c.text for c in b.citations])
    answer = narrow.ask(QUESTIONS[0])
    assert not answer.abstained and any("1,280 metres" in c.text for c in answer.citations)
    narrow.close()
    wide.close()


QUESTIONS = [
    "How long is the main span of the Golden Gate Bridge?",
    "How do I restart the payments database?",
    "What colour is the bridge painted?",
    "Who won the 1998 football world cup?",
]
