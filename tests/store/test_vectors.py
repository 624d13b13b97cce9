"""The embedded vector index: an immutable base, a small exact delta and tombstones per generation.

What matters at scale: deleting or replacing a document writes the delta and tombstones, never the
base (a million-vector HNSW file), and a reader loading another process's generation keeps the base
it holds; and searches over base + delta − tombstones return what an exact search over the live
vectors returns.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from qa_service.errors import IndexMismatchError
from qa_service.store.embedded import vectors
from qa_service.store.embedded.vectors import VectorIndex
from tests.store.test_document_store import ENC, open_store, source

DIM = 16


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _exact(ids: np.ndarray, matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(matrix @ query), kind="stable")[:k]
    return [int(ids[i]) for i in order]


@pytest.fixture
def small_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    """A delta of more than 8 vectors is merged: small tests exercise every path."""
    monkeypatch.setattr(vectors, "DELTA_MAX", 8)


@pytest.mark.parametrize("postfilter_max", [0, 1000], ids=["selector", "postfilter"])
@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF4,Flat"])
def test_search_over_base_delta_and_tombstones_is_the_exact_search_of_live_vectors(
    spec: str, postfilter_max: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Tombstones hidden inside FAISS (many) or fetched and dropped (few): the same live results."""
    monkeypatch.setattr(vectors, "DELTA_MAX", 64)
    monkeypatch.setattr(vectors, "POSTFILTER_MAX", postfilter_max)
    rng = np.random.default_rng(7)
    matrix = _unit(rng, 400)
    ids = np.arange(1, 401, dtype=np.int64)
    index = VectorIndex.create(spec, DIM)
    index.add(ids[:300], matrix[:300])  # merged into the base (trains IVF)
    index.set_search_params(nprobe=4, ef_search=400)  # exhaustive on 400 vectors
    assert index.delta_size == 0 and index.index.ntotal == 300
    index.save(tmp_path / "v-1.faiss")
    nxt = index.copy()
    nxt.add(ids[300:360], matrix[300:360])  # stays in the delta (60 <= 64)
    gone = np.concatenate([ids[:50:3], ids[300:310]])  # base rows become tombstones, delta rows go
    nxt.remove(gone)
    assert nxt.delta_size == 50 and nxt.tombstones == set(ids[:50:3].tolist())
    assert nxt.index is index.index  # the base is shared, not copied
    live = ~np.isin(ids[:360], gone)
    for reopened in (nxt, _saved_and_loaded(nxt, tmp_path / "v-2.faiss", spec)):
        reopened.set_search_params(nprobe=4, ef_search=400)
        assert reopened.size == int(live.sum())
        for query in _unit(rng, 20):
            hits = reopened.search(query, 10)
            assert [i for i, _ in hits] == _exact(ids[:360][live], matrix[:360][live], query, 10)
        assert (reopened._selector is None) == bool(postfilter_max)  # the selector only where it is used
    # The old generation still answers as it was (readers pinned to it are unaffected).
    assert index.size == 300 and index.search(matrix[0], 1)[0][0] == 1


def _saved_and_loaded(index: VectorIndex, path: Path, spec: str) -> VectorIndex:
    index.save(path)
    return VectorIndex.load(path, spec, parts=index.parts)


def test_concurrent_searches_share_the_tombstone_selector_safely(small_delta: None) -> None:
    rng = np.random.default_rng(3)
    matrix, ids = _unit(rng, 200), np.arange(1, 201, dtype=np.int64)
    index = VectorIndex.create("HNSW16", DIM)
    index.add(ids, matrix)
    index.set_search_params(16, 200)
    index.remove(ids[::2])
    queries = _unit(rng, 50)
    live = ids % 2 == 0
    expected = [_exact(ids[live], matrix[live], q, 5) for q in queries]
    errors: list[str] = []

    def run() -> None:
        for _ in range(20):
            for q, want in zip(queries, expected, strict=True):
                got = [i for i, _ in index.search(q, 5)]
                if got != want:
                    errors.append(f"{got} != {want}")

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_delete_writes_no_base_file(tmp_path: Path, small_delta: None) -> None:
    """Generation 2 deletes and adds a little: its base file is generation 1's (a hard link, same
    inode), and only the delta and tombstones are new."""
    store = open_store(tmp_path, "HNSW8")
    docs = [source(f"d{i}", [f"Topic {i} sentence alpha {i}.", f"Another line {i} beta."]) for i in range(20)]
    store.apply(docs, [])
    base_1 = os.stat(tmp_path / "sentences-1.faiss")
    store.apply([source("d3", ["Replaced content about zebras."])], ["d4"])
    base_2 = os.stat(tmp_path / "sentences-2.faiss")
    assert (base_2.st_dev, base_2.st_ino) == (base_1.st_dev, base_1.st_ino)
    assert not (tmp_path / "sentences-1.faiss").exists()  # the old name went; the file lives on
    assert (tmp_path / "sentences-2.faiss.delta").exists()
    assert (tmp_path / "sentences-2.faiss.tombstones.npy").exists()
    reopened = open_store(tmp_path, "HNSW8")
    assert reopened.sentence_count == 40 - 4 + 1
    rows = reopened.sentence_rows([i for i, _ in reopened.dense_sentences(ENC.embed(["zebras"])[0], 40)])
    texts = {r["text"] for r in rows}
    assert "Replaced content about zebras." in texts
    assert not any(t.startswith(("Topic 3 ", "Topic 4 ")) for t in texts)


def test_the_delta_merges_into_a_new_base_past_its_bound(tmp_path: Path, small_delta: None) -> None:
    store = open_store(tmp_path, "HNSW8")
    store.apply([source(f"d{i}", [f"Topic {i} alpha.", f"Line {i} beta."]) for i in range(20)], [])
    store.apply([source("e0", ["Cats purr.", "Dogs bark."])], [])
    before = os.stat(tmp_path / "sentences-2.faiss").st_ino
    assert store.sentence_index.delta_size == 2
    store.apply([source(f"e{i}", [f"Extra {i} gamma.", f"More {i} delta."]) for i in range(1, 8)], [])
    index = store.sentence_index
    assert index.delta_size == 0 and index.index.ntotal == 56  # merged: 40 + 16
    assert os.stat(tmp_path / "sentences-3.faiss").st_ino != before
    assert not (tmp_path / "sentences-3.faiss.delta").exists()
    assert open_store(tmp_path, "HNSW8").sentence_count == 56


def test_a_reader_keeps_its_base_when_another_process_only_changes_the_delta(tmp_path: Path, small_delta: None) -> None:
    reader, writer = open_store(tmp_path, "HNSW8"), open_store(tmp_path, "HNSW8")
    writer.apply([source(f"d{i}", [f"Topic {i} alpha.", f"Line {i} beta."]) for i in range(20)], [])
    base = reader.sentence_index.index
    writer.apply([], ["d5"])
    with reader.snapshot():
        assert reader.generation == 2
        assert reader.sentence_index.index is base  # not read from disk again
        assert reader.sentence_count == 38


def test_a_generation_whose_files_do_not_match_its_record_is_refused(tmp_path: Path, small_delta: None) -> None:
    store = open_store(tmp_path, "HNSW8")
    store.apply([source(f"d{i}", [f"Topic {i} alpha.", f"Line {i} beta."]) for i in range(20)], [])
    store.apply([source("x", ["Cats purr."])], ["d1"])
    path = tmp_path / "sentences-2.faiss"
    assert VectorIndex.load(path, "HNSW8", parts=[1, 2]).size == 39
    (tmp_path / "sentences-2.faiss.delta").unlink()  # as if a cleanup raced the read
    with pytest.raises(IndexMismatchError):
        VectorIndex.load(path, "HNSW8", parts=[1, 2])


def test_the_passage_index_can_search_narrower_than_the_sentence_index(tmp_path: Path) -> None:
    """QA_FAISS_PASSAGE_EF_SEARCH: its own HNSW breadth for passages, after loading and after a write;
    unset, passages follow the sentence breadth."""
    import faiss

    from qa_service.pipeline.builders import open_store as open_configured
    from qa_service.settings import Settings
    from qa_service.store.embedded.document_store import FaissSQLiteDocumentStore

    def breadths(store: FaissSQLiteDocumentStore) -> tuple[int, int]:
        snap = store.refresh()
        return tuple(  # type: ignore[return-value]
            int(faiss.downcast_index(i.index.index).hnsw.efSearch) for i in (snap.sentences, snap.passages)
        )

    store = open_store(tmp_path / "a", "HNSW16", ef_search=300, passage_ef_search=20)
    store.apply([source("a", ["Otters hold hands.", "They sleep on water."])], [])
    assert breadths(store) == (300, 20)  # set on the generation the write committed
    assert breadths(open_store(tmp_path / "a", "HNSW16", ef_search=300, passage_ef_search=20)) == (300, 20)
    assert breadths(open_store(tmp_path / "a", "HNSW16", ef_search=300)) == (300, 300)
    clone = FaissSQLiteDocumentStore.from_dict(store.to_dict())
    assert clone.passage_ef_search == 20
    settings = Settings(
        index_dir=tmp_path / "b", embedding_model="hash:16", faiss_index="HNSW16", faiss_ef_search=200,
        faiss_passage_ef_search=30,
    )  # fmt: skip
    configured = open_configured(settings)  # the settings reach the store through the catalog
    assert isinstance(configured, FaissSQLiteDocumentStore)
    configured.apply([source("a", ["Otters hold hands."])], [])
    assert breadths(configured) == (200, 30)


def test_bulk_adds_use_the_process_cores_and_searches_stay_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training and adding run on the cores the process may use (its CPU set), then back to one."""
    calls: list[int] = []
    real = vectors.faiss.omp_set_num_threads
    monkeypatch.setattr(vectors, "available_cores", lambda: 3)
    monkeypatch.setattr(vectors.faiss, "omp_set_num_threads", lambda n: (calls.append(n), real(n))[1])
    index = vectors.faiss.IndexIDMap2(vectors.faiss.IndexFlatIP(8))
    data = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    vectors._train_and_add(index, "Flat", np.arange(20), data)
    assert calls == [3, 1] and index.ntotal == 20
