from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy

from qa_service.encoders import HashingEncoder
from qa_service.errors import IndexMismatchError, IndexNotFoundError, InvalidInputError
from qa_service.store.embedded.document_store import FaissSQLiteDocumentStore
from qa_service.store.records import SourceDocument

ENC = HashingEncoder(16)


def source(doc_id: str, sentences: list[str]) -> SourceDocument:
    text = " ".join(sentences)
    spans, pos = [], 0
    for s in sentences:
        start = text.index(s, pos)
        spans.append((start, start + len(s), 0))
        pos = start + len(s)
    return SourceDocument(
        id=doc_id,
        source=f"{doc_id}.txt",
        origin=f"/docs/{doc_id}.txt",
        text=text,
        content_hash=doc_id,
        sentences=spans,
        sentence_embeddings=ENC.embed(sentences),
        passages=[(0, len(text))],
        passage_embeddings=ENC.embed([text]),
    )


def open_store(path: Path, spec: str = "Flat", **kw: object) -> FaissSQLiteDocumentStore:
    return FaissSQLiteDocumentStore(str(path), model="hash:16", dimension=16, faiss_index=spec, **kw)  # type: ignore[arg-type]


def test_write_reopen_search_and_manifest(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.apply([source("a", ["Otters hold hands.", "They sleep on water."]), source("b", ["Cats purr loudly."])], [])
    reopened = open_store(tmp_path)
    assert reopened.count_documents() == 3
    hits = reopened.dense_sentences(ENC.embed(["cats purr loudly"])[0], 1)
    assert reopened.sentence_rows([hits[0][0]])[0]["text"] == "Cats purr loudly."
    assert [r for r, _ in reopened.keyword_sentences("otters", 5)]
    manifest = reopened.manifest()
    assert (manifest.model, manifest.dimension, manifest.documents, manifest.sentences) == ("hash:16", 16, 2, 3)
    assert (tmp_path / "manifest.json").exists()
    before = manifest.corpus_hash
    reopened.apply([], ["b"])
    assert reopened.manifest().corpus_hash != before and reopened.count_documents() == 2


def test_refuses_model_or_dimension_mismatch_and_missing_index(tmp_path: Path) -> None:
    open_store(tmp_path).apply([source("a", ["One sentence."])], [])
    with pytest.raises(IndexMismatchError, match="hash:16"):
        FaissSQLiteDocumentStore(str(tmp_path), model="other-model", dimension=16)
    with pytest.raises(IndexMismatchError, match="dimension 16"):
        FaissSQLiteDocumentStore(str(tmp_path), model="hash:16", dimension=32)
    with pytest.raises(IndexNotFoundError, match="qa-service index"):
        FaissSQLiteDocumentStore(str(tmp_path / "nothing"), model="hash:16", dimension=16, create=False)


def test_wrong_embedding_shape_and_offsets_are_rejected_without_changes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    bad = source("a", ["One sentence."])
    bad.sentence_embeddings = np.zeros((1, 8), dtype=np.float32)
    with pytest.raises(IndexMismatchError):
        store.apply([bad], [])
    bad = source("a", ["One sentence."])
    bad.sentences = [(0, 999, 0)]
    with pytest.raises(InvalidInputError):
        store.apply([bad], [])
    assert store.count_documents() == 0 and store.manifest().generation == 0


@pytest.mark.parametrize("spec", ["Flat", "HNSW8", "IVF2,Flat"])
def test_index_types_support_update_and_delete(tmp_path: Path, spec: str) -> None:
    store = open_store(tmp_path, spec)
    docs = [source(f"d{i}", [f"Topic {i} sentence alpha {i}.", f"Another line {i} beta."]) for i in range(30)]
    store.apply(docs, [])
    store.apply([source("d3", ["Replaced content about zebras."])], ["d4"])
    reopened = open_store(tmp_path, spec)
    assert reopened.count_documents() == 30 * 2 - 2 - 1
    rows = reopened.sentence_rows([i for i, _ in reopened.dense_sentences(ENC.embed(["zebras"])[0], 60)])
    texts = {r["text"] for r in rows}
    assert "Replaced content about zebras." in texts
    assert not any(t.startswith(("Topic 3 ", "Topic 4 ")) for t in texts)


def test_changing_index_type_rebuilds_from_stored_embeddings(tmp_path: Path) -> None:
    open_store(tmp_path).apply([source("a", ["Alpha here.", "Beta there."])], [])
    store = open_store(tmp_path, "HNSW8")
    assert store.manifest().faiss_index == "HNSW8" and store.count_documents() == 2
    assert store.dense_sentences(ENC.embed(["beta there"])[0], 1)


def test_filters_apply_before_search(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.apply([source("a", ["Shared words here."]), source("b", ["Shared words here too."])], [])
    only_b = {"field": "meta.document_id", "operator": "==", "value": "b"}
    hits = store.dense_sentences(ENC.embed(["Shared words here."])[0], 1, only_b)
    assert store.sentence_rows([hits[0][0]])[0]["document_id"] == "b"
    docs = store.filter_documents(
        {"operator": "OR", "conditions": [only_b, {"field": "meta.source", "operator": "in", "value": ["a.txt"]}]}
    )
    assert sorted(d.meta["document_id"] for d in docs) == ["a", "b"]
    assert store.filter_documents({"field": "content", "operator": "!=", "value": "Shared words here."})[0].id == "b:s0"
    with pytest.raises(InvalidInputError):
        store.filter_documents({"field": "meta.x", "operator": "~", "value": 1})


def test_keyword_query_is_injection_safe(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.apply([source("a", ['Quoted "words" AND stuff NEAR(x).'])], [])
    assert store.keyword_sentences('" OR ( AND * ) "', 5) == []  # only syntax and stopwords: no query
    assert store.keyword_sentences('NEAR( "stuff', 5)  # FTS syntax is quoted, the words still match
    assert store.keyword_sentences("zebra) OR (", 5) == []


def test_haystack_protocol_write_filter_delete(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    docs = [
        Document(content=t, embedding=ENC.embed([t])[0].tolist(), meta={"document_id": "g", "source": "g"})
        for t in ["First fact.", "Second fact."]
    ]
    assert store.write_documents(docs) == 2
    with pytest.raises(DuplicateDocumentError):
        store.write_documents(docs)
    assert store.write_documents(docs, DuplicatePolicy.SKIP) == 0
    stored = store.filter_documents()
    assert [d.content for d in stored] == ["First fact.", "Second fact."]
    assert store.document_text("g")[stored[1].meta["start"] : stored[1].meta["end"]] == "Second fact."
    store.delete_documents(["g:s0"])
    assert [d.content for d in store.filter_documents()] == ["Second fact."]
    store.delete_documents(["g"])
    assert store.count_documents() == 0
    clone = FaissSQLiteDocumentStore.from_dict(store.to_dict())
    assert clone.index_dir == store.index_dir and clone.faiss_index == "Flat"


def test_the_corpus_hash_is_kept_up_to_date_by_each_write(tmp_path: Path) -> None:
    """Each write updates the recorded hash from what it adds and removes; it always equals the hash
    of the committed documents computed from scratch (and an index without a record gets one)."""
    from qa_service.store.embedded.document_store import CORPUS_HASH_KEY
    from qa_service.store.manifest import corpus_hash

    store = open_store(tmp_path)

    def from_scratch() -> str:
        return corpus_hash([r["content_hash"] for r in store.db.query("SELECT content_hash FROM documents")])

    seen = []
    writes: list[tuple[list[SourceDocument], list[str]]] = [
        ([source("a", ["Alpha here."]), source("b", ["Beta there."])], []),
        ([source("a", ["Alpha replaced."])], []),
        ([source("c", ["Gamma."])], ["b"]),
        ([], ["a"]),
        ([source("b", ["Beta there."])], []),
    ]
    for upserts, deletes in writes:
        store.apply(upserts, deletes)
        assert store.manifest().corpus_hash == from_scratch()
        seen.append(store.manifest().corpus_hash)
    # Documents {a, b}, {a', b} (same content hash: source() hashes the id), {a, c}, {c}, {b, c}.
    assert seen[0] == seen[1] and len({seen[0], seen[2], seen[3], seen[4]}) == 4
    with store.db.transaction() as conn:  # an index written before the record existed
        conn.execute("DELETE FROM meta WHERE key = ?", (CORPUS_HASH_KEY,))
    reopened = open_store(tmp_path)
    assert reopened.manifest().corpus_hash == from_scratch()
    reopened.apply([source("d", ["Delta."])], [])
    assert reopened.manifest().corpus_hash == from_scratch()


def test_documents_under_a_scope_are_found_by_origin_ranges(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    origins = ["/d/a", "/d/a/x.txt", "/d/a/y/z.txt", "/d/ab.txt", "/d/a0.txt", "/d/b.txt"]
    docs = []
    for i, origin in enumerate(origins):
        doc = source(f"doc{i}", [f"Sentence number {i}."])
        docs.append(SourceDocument(**{**doc.__dict__, "origin": origin}))
    store.apply(docs, [])
    assert set(store.documents_under(["/d/a"])) == {"/d/a", "/d/a/x.txt", "/d/a/y/z.txt"}
    assert set(store.documents_under(["/d/a/"])) == {"/d/a/x.txt", "/d/a/y/z.txt"}
    assert set(store.documents_under(["/d/b.txt", "/d/ab.txt"])) == {"/d/b.txt", "/d/ab.txt"}
    many = [f"/nowhere/{i}" for i in range(1000)] + ["/d/a0.txt"]  # more scopes than one SQL statement takes
    assert set(store.documents_under(many)) == {"/d/a0.txt"}


def test_a_large_write_leaves_no_second_copy_in_the_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite keeps its WAL file at its largest size: after a write larger than WAL_LIMIT the store
    truncates it (the data is in the database file), and never waits for a reader to do so."""
    import threading

    from qa_service.store.embedded import database

    wal = tmp_path / "store.sqlite-wal"
    store = open_store(tmp_path)
    docs = [source(f"d{i}", [f"Topic {i} sentence alpha {i}.", f"Another line {i} beta."]) for i in range(200)]
    monkeypatch.setattr(database, "WAL_LIMIT", 0)
    store.apply(docs, [])
    assert wal.stat().st_size == 0
    assert open_store(tmp_path).count_documents() == 400

    # A reader in the middle of an answer: the write commits at once and the WAL stays for now.
    pinned, release = threading.Event(), threading.Event()

    def reader() -> None:
        with store.snapshot():
            store.count_documents()
            pinned.set()
            release.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    pinned.wait(10)
    store.apply([source("x", ["Cats purr."])], [])
    assert wal.stat().st_size > 0 and not release.is_set()
    release.set()
    thread.join()
    store.apply([source("y", ["Dogs bark."])], [])
    assert wal.stat().st_size == 0
    assert open_store(tmp_path).count_documents() == 402


def test_refine_rescores_approximate_hits_with_the_stored_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`refine`: an index with coarse codes (4 bits a component) returns the exact nearest
    sentences and their exact scores once its hits are re-scored with the stored vectors."""
    from qa_service.store.embedded import vectors

    monkeypatch.setattr(vectors, "DELTA_MAX", 0)  # every vector in the coded base, none in the exact delta
    rng = np.random.default_rng(11)
    words = [f"w{i}" for i in range(300)]
    docs = [source(f"d{n}", [" ".join(rng.choice(words, 6)) + "." for _ in range(4)]) for n in range(60)]
    exact, coarse, refined = (open_store(tmp_path / "flat"), open_store(tmp_path / "sq4", "SQ4"),
                              open_store(tmp_path / "refined", "SQ4", refine=8))  # fmt: skip
    for store in (exact, coarse, refined):
        store.apply(docs, [])
    misses = 0
    for query in ENC.embed([" ".join(rng.choice(words, 4)) for _ in range(20)]):
        truth = exact.dense_sentences(query, 5)
        got = refined.dense_sentences(query, 5)
        assert [i for i, _ in got] == [i for i, _ in truth]
        assert [s for _, s in got] == pytest.approx([s for _, s in truth], abs=1e-5)
        misses += [i for i, _ in coarse.dense_sentences(query, 5)] != [i for i, _ in truth]
    assert misses > 0  # without re-scoring, the coarse codes reorder near neighbours
    assert refined.to_dict()["init_parameters"]["refine"] == 8


def test_the_refine_setting_reaches_every_collection(tmp_path: Path) -> None:
    from qa_service.service import QAService
    from qa_service.settings import Settings

    service = QAService(Settings(index_dir=tmp_path / "index", embedding_model="hash:64", faiss_refine=4))
    service.create_collection("team")
    assert service.store.refine == service.catalog.store("team").refine == 4  # type: ignore[attr-defined]
    service.close()
