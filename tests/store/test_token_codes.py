"""Token codes in the stores: a new index records its code (and codebook hash) in the manifest (int4
by default), an index from before PQ (int8 blobs) answers as it did and keeps int8 when given new
documents (under the int4 default too), mixed
codes are refused, a full re-index adopts the new code, and a codebook this installation lacks is
refused at open. Both backends."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from qa_service import codebooks
from qa_service.errors import IndexMismatchError
from qa_service.indexer import TextSource
from qa_service.pipeline.builders import index_code
from qa_service.quantize import HEADER, INT4, INT8, blob_code, token_blob
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.store.records import SourceDocument
from tests.store.test_collection_upgrade import FIXTURE, _answer, _expected
from tests.store.test_contract import (
    DOCS,
    backend,  # noqa: F401  (the fixture: faiss and pgvector)
    backend_settings,
)

TEXTS = [TextSource(source=name, text=text, origin=f"test:{name}") for name, text in DOCS.items()]


def tiny_squad(path: Path) -> Path:
    words = [w.strip(".,").lower() for text in DOCS.values() for w in text.split()]
    made = [" ".join(words[(7 * i + j) % len(words)] for j in range(12)).capitalize() + "." for i in range(60)]
    texts = [*DOCS.values(), *(" ".join(made[i : i + 3]) for i in range(0, 60, 3))]
    paragraphs = [{"context": text, "qas": []} for text in texts]
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "Sample", "paragraphs": paragraphs}]}))
    return path


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A pq8 codebook for the hashing encoder, as if it shipped."""
    out = tmp_path / "codebooks"
    info = codebooks.build(tiny_squad(tmp_path / "sample.json"), "hash:64", 8, out_dir=out, max_tokens=5_000)
    monkeypatch.setattr(codebooks, "SHIPPED", out)
    return info


def test_the_codebook_command_reproduces_its_file(tmp_path: Path) -> None:
    sample = tiny_squad(tmp_path / "sample.json")
    first = codebooks.build(sample, "hash:64", 8, out_dir=tmp_path / "a")
    codebooks.main([str(sample), "--model", "hash:64", "--m", "8", "--out", str(tmp_path / "b")])
    second = json.loads(codebooks.paths("hash:64", 8, tmp_path / "b")[1].read_text())
    assert first == second and first["sha256"] == codebooks.load("hash:64", 8, tmp_path / "b").digest  # type: ignore[union-attr]


def test_the_shipped_codebook_matches_its_manifest() -> None:
    codecs = codebooks.load_shipped()
    assert codecs, "no codebook ships in qa_service/token_codebooks"
    for meta in codebooks.SHIPPED.glob("*.json"):
        info = json.loads(meta.read_text())
        assert info["sample"] == "squad2-dev-subset.json"  # the tuning set, never the validation file
        assert {"seed", "sample_sha256", "recipe", "command", "sha256"} <= info.keys()
        sample = Path(__file__).parents[2].parent / "shared" / "eval" / info["sample"]
        if sample.exists():
            import hashlib

            assert hashlib.sha256(sample.read_bytes()).hexdigest() == info["sample_sha256"]


def _settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest, code: str) -> Settings:  # noqa: F811
    url = request.getfixturevalue("database_url") if backend == "pgvector" else None
    return backend_settings(backend, tmp_path, url).model_copy(update={"token_code": code})


def _int8_document() -> SourceDocument:
    """One sentence whose token vectors are int8: refused by an index in another code."""
    unit = np.full((1, 64), 0.125, dtype=np.float32)
    return SourceDocument(
        id="x",
        source="x.txt",
        origin="x",
        text="A sentence here.",
        content_hash="h",
        sentences=[(0, 16, 0)],
        sentence_embeddings=unit,
        passages=[(0, 16)],
        passage_embeddings=unit,
        sentence_tokens=[token_blob(unit)],
    )


def test_a_new_index_stores_pq_codes_and_records_them(
    backend: str,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
    shipped: dict[str, object],
) -> None:
    service = QAService(_settings(backend, tmp_path, request, "pq8"))
    service.index_texts(TEXTS)
    code = f"pq8:{str(shipped['sha256'])[:16]}"
    assert service.store.manifest().token_code == code
    rows = service.store.sentence_rows([d.meta["row_id"] for d in service.store.filter_documents()])
    assert rows and all(blob_code(r["tokens"], 64) == code for r in rows)
    assert all((len(r["tokens"]) - 4) % 8 == 0 for r in rows)  # header + 8 bytes a token
    assert not service.ask("How do I restart the payments database?").abstained
    # int8 sentences into this index are refused (one code per index)
    with pytest.raises(IndexMismatchError, match="stores token vectors as pq8"):
        service.store.apply([_int8_document()], [])
    service.store.close()


def test_a_new_index_stores_int4_by_default(
    backend: str,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("database_url") if backend == "pgvector" else None
    settings = backend_settings(backend, tmp_path, url)
    assert settings.token_code == INT4
    service = QAService(settings)
    service.index_texts(TEXTS)
    assert service.store.manifest().token_code == INT4
    rows = service.store.sentence_rows([d.meta["row_id"] for d in service.store.filter_documents()])
    assert rows and all(blob_code(r["tokens"], 64) == INT4 for r in rows)
    assert all((len(r["tokens"]) - HEADER) % 32 == 0 for r in rows)  # header + half a byte a component
    answer = service.ask("How long is the main span of the Golden Gate Bridge?")
    assert not answer.abstained and any("1,280 metres" in c.text for c in answer.citations)
    with pytest.raises(IndexMismatchError, match="stores token vectors as int4"):
        service.store.apply([_int8_document()], [])
    service.store.close()


@pytest.mark.parametrize("code", ["pq8", INT4])
def test_a_full_reindex_adopts_the_new_code(
    backend: str,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
    shipped: dict[str, object],
    code: str,
) -> None:
    old = QAService(_settings(backend, tmp_path, request, "int8"))
    old.index_texts(TEXTS)
    assert old.store.manifest().token_code == INT8
    old.store.close()
    new = QAService(_settings(backend, tmp_path, request, code))
    new.index_texts([TextSource(source="new.txt", text="Penguins swim fast. They live in the south.", origin="n")])
    assert new.store.manifest().token_code == INT8
    for doc in new.documents():
        new.delete_document(doc.id)
    new.index_texts(TEXTS)
    assert new.store.manifest().token_code.split(":")[0] == code
    new.store.close()


@pytest.mark.parametrize("code", ["pq8", None])  # None: the default, int4
def test_an_int8_index_from_before_pq_answers_the_same_and_stays_int8(
    tmp_path: Path, shipped: dict[str, object], code: str | None
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(FIXTURE / "index", index_dir)
    expected = _expected(json.loads((FIXTURE / "expected.json").read_text())["answers"])
    settings = Settings(index_dir=index_dir, embedding_model="hash:64", **({"token_code": code} if code else {}))
    service = QAService(settings, create_index=False)
    for question, answer in expected.items():  # less the ranking scores (see test_collection_upgrade)
        assert _answer(service, question) == answer
    assert service.store.manifest().token_code == INT8
    service.index_texts(TEXTS)
    assert service.store.manifest().token_code == INT8
    with sqlite3.connect(index_dir / "store.sqlite") as conn:
        blobs = [r[0] for r in conn.execute("SELECT tokens FROM sentences")]
    assert blobs and all(blob_code(b, 64) == INT8 for b in blobs)
    for question, answer in expected.items():
        assert json.loads(service.ask(question).model_dump_json())["answer"] == answer["answer"]
    service.close()


def test_an_index_naming_a_codebook_not_shipped_refuses_to_open(tmp_path: Path, shipped: dict[str, object]) -> None:
    settings = Settings(index_dir=tmp_path / "index", embedding_model="hash:64", token_code="pq8")
    service = QAService(settings)
    service.index_texts(TEXTS)
    service.close()
    with sqlite3.connect(tmp_path / "index" / "store.sqlite") as conn:
        conn.execute("UPDATE meta SET value = 'pq8:00112233aabbccdd' WHERE key = 'token_code'")
    with pytest.raises(IndexMismatchError, match="does not ship"):
        QAService(settings, create_index=False)


def test_a_model_without_a_shipped_codebook_falls_back_to_int8(tmp_path: Path) -> None:
    service = QAService(Settings(index_dir=tmp_path / "index", embedding_model="hash:64", token_code="pq48"))
    service.index_texts(TEXTS)
    assert service.store.manifest().token_code == INT8
    assert not service.ask("How long is the main span of the Golden Gate Bridge?").abstained
    service.close()


@pytest.mark.parametrize(("dimension", "code"), [(15, "int4"), (63, "int4"), (64, "pq48")])
def test_where_a_code_cannot_store_the_tokens_indexing_and_abstention_agree_on_int8(
    tmp_path: Path, dimension: int, code: str
) -> None:
    """One decision (`codebooks.resolve`): the embedder's fallback and the code an empty index is
    answered with (its abstention model) are the same, int8."""
    settings = Settings(index_dir=tmp_path / "index", embedding_model=f"hash:{dimension}", token_code=code)
    service = QAService(settings)
    assert codebooks.resolve(code, settings.embedding_model, dimension) is None
    assert index_code(settings, service.store) == INT8  # empty: what indexing will write
    service.index_texts(TEXTS)
    assert service.store.manifest().token_code == INT8 == index_code(settings, service.store)
    rows = service.store.sentence_rows(list(range(1, 4)))
    assert rows and all(len(r["tokens"]) % dimension == 0 for r in rows)  # int8: n x dimension bytes
    service.close()


def test_int4_is_kept_where_it_can_store_the_tokens(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index", embedding_model="hash:16", token_code=INT4)
    service = QAService(settings)
    assert index_code(settings, service.store) == INT4
    service.index_texts(TEXTS)
    assert service.store.manifest().token_code == INT4
    service.close()


def test_a_codebook_folder_in_the_settings_serves_a_model_none_ships_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`QA_TOKEN_CODEBOOK_DIR`: a codebook trained with `--out DIR` is used for writing, and an index
    written with it opens (in a process that has not seen it yet) only where the setting names DIR."""
    from qa_service import quantize

    monkeypatch.setattr(codebooks, "_extra", [])
    folder = tmp_path / "codebooks"
    codebooks.main([str(tiny_squad(tmp_path / "sample.json")), "--model", "hash:64", "--m", "8", "--out", str(folder)])
    digest = json.loads(codebooks.paths("hash:64", 8, folder)[1].read_text())["sha256"]
    settings = Settings(index_dir=tmp_path / "index", embedding_model="hash:64", token_code="pq8")
    assert codebooks.resolve("pq8", "hash:64", 64) is None  # neither shipped nor named yet
    service = QAService(settings.model_copy(update={"token_codebook_dir": folder}))
    service.index_texts(TEXTS)
    assert service.store.manifest().token_code == f"pq8:{digest[:16]}"
    service.close()
    monkeypatch.setattr(codebooks, "_extra", [])  # a fresh process: nothing registered
    monkeypatch.setattr(quantize, "_registry", {})
    with pytest.raises(IndexMismatchError, match="does not ship"):
        QAService(settings, create_index=False)
    reopened = QAService(settings.model_copy(update={"token_codebook_dir": folder}), create_index=False)
    answer = reopened.ask("How long is the main span of the Golden Gate Bridge?")
    assert not answer.abstained and any("1,280 metres" in c.text for c in answer.citations)
    reopened.close()


def test_a_codebook_folder_that_does_not_exist_is_a_settings_error(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="token_codebook_dir"):
        Settings(token_codebook_dir=tmp_path / "missing")


def _page_size(index_dir: Path) -> int:
    with sqlite3.connect(index_dir / "store.sqlite") as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def test_a_new_pq_index_gets_larger_pages_and_an_existing_one_keeps_its_own(
    tmp_path: Path, shipped: dict[str, object]
) -> None:
    """Compact (PQ) sentence rows pack into 16 KiB pages; int4's larger rows stay in SQLite's 4 KiB."""
    for name, code in (("pq", "pq8"), ("int4", INT4)):
        service = QAService(Settings(index_dir=tmp_path / name, embedding_model="hash:64", token_code=code))
        service.index_texts(TEXTS)
        service.close()
    assert (_page_size(tmp_path / "pq"), _page_size(tmp_path / "int4")) == (16384, 4096)
    settings = Settings(index_dir=tmp_path / "int4", embedding_model="hash:64", token_code="pq8")
    reopened = QAService(settings, create_index=False)
    reopened.index_texts([TextSource(source="new.txt", text="Penguins swim fast. They live in the south.", origin="n")])
    assert _page_size(tmp_path / "int4") == 4096 and reopened.store.manifest().token_code == INT4
    assert not reopened.ask("How long is the main span of the Golden Gate Bridge?").abstained
    reopened.close()
