"""One answer reads one committed generation of the embedded store, whatever is written meanwhile."""

import threading
from pathlib import Path

import numpy as np
import pytest

from qa_service.store.embedded import vectors as vectors_module
from tests.store.test_document_store import ENC, open_store, source


def _in_thread(target: object) -> None:
    thread = threading.Thread(target=target)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_snapshot_keeps_reading_the_generation_it_started_with(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.apply([source("a", ["Otters hold hands.", "They sleep on water."])], [])
    query = ENC.embed(["otters hold hands"])[0]
    with store.snapshot():
        generation = store.generation
        ids = [i for i, _ in store.dense_sentences(query, 2)]
        # Another thread (an upload) replaces the document and commits a new generation.
        _in_thread(lambda: store.apply([source("a", ["Badgers dig.", "They sleep underground."])], []))
        rows = store.sentence_rows(ids)
        passages = store.passage_vectors([r["passage_id"] for r in rows])
        assert {r["text"] for r in rows} == {"Otters hold hands.", "They sleep on water."}
        assert set(passages) == {r["passage_id"] for r in rows}
        assert store.generation == generation
        assert [i for i, _ in store.dense_sentences(query, 2)] == ids
        assert store.document_text("a") == "Otters hold hands. They sleep on water."
    assert store.generation == generation + 1
    assert store.document_text("a") == "Badgers dig. They sleep underground."


def test_snapshots_see_writes_of_other_processes(tmp_path: Path) -> None:
    reader, writer = open_store(tmp_path), open_store(tmp_path)
    writer.apply([source("a", ["Otters hold hands."])], [])
    with reader.snapshot():
        assert reader.generation == 1 and reader.count_documents() == 1
    writer.apply([source("b", ["Cats purr."])], [])
    with reader.snapshot():
        hits = reader.dense_sentences(ENC.embed(["cats purr"])[0], 1)
        assert reader.sentence_rows([hits[0][0]])[0]["text"] == "Cats purr."


def test_refresh_retries_when_the_files_it_reads_are_removed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = open_store(tmp_path), open_store(tmp_path)
    writer.apply([source("a", ["Otters hold hands."])], [])
    real_load = vectors_module.VectorIndex.load
    raced = []

    def load_while_another_process_commits(path: Path, spec: str, *args: object) -> vectors_module.VectorIndex:
        if not raced:  # between reading the generation and its files, a newer one replaces them
            raced.append(path)
            writer.apply([source("b", ["Cats purr."])], [])
        return real_load(path, spec, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(vectors_module.VectorIndex, "load", staticmethod(load_while_another_process_commits))
    assert reader.generation == 2 and raced
    assert reader.sentence_count == 2


def test_a_stale_tombstone_file_is_never_committed_with_a_later_generation(tmp_path: Path) -> None:
    store = open_store(tmp_path, "HNSW8")
    store.apply([source("a", ["Otters hold hands.", "They sleep on water."])], [])
    # A failed write of generation 2 left its tombstones behind.
    np.save(tmp_path / "sentences-2.faiss.tombstones.npy", np.array([1, 2], dtype=np.int64))
    store.apply([source("b", ["Cats purr."])], [])
    reopened = open_store(tmp_path, "HNSW8")
    assert reopened.sentence_count == 3
    hits = reopened.dense_sentences(ENC.embed(["otters hold hands"])[0], 3)
    assert len(hits) == 3
