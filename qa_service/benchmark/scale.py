"""Scale test: a synthetic corpus indexed with an approximate FAISS index.

The corpus is `ZipfCorpus` (Zipfian vocabulary of 150,000 terms, SQuAD-shaped sentences and
documents), so keyword posting lists are as long as in real text; questions are runs of words from
its sentences.

Measures indexing throughput, query latency (vector search alone and whole answers), recall@10 of
the approximate index against exact search over the same stored vectors, peak RSS, resident memory
per sentence beyond its vector, and that deletes and updates still take effect. Each phase that
reports memory runs in its own child process (`python -m qa_service.benchmark.scale PHASE ...`).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa_service import codebooks
from qa_service.benchmark.measure import directory_bytes, peak_rss_mb, rss_mb
from qa_service.benchmark.zipf_corpus import ZipfCorpus
from qa_service.pipeline.builders import encoder_for
from qa_service.service import QAService, TextSource
from qa_service.settings import Settings
from qa_service.store.embedded.document_store import FaissSQLiteDocumentStore
from qa_service.store.sentences import unblob_many

DEFAULT_SCALE_INDEX = "HNSW32,SQ8"
CODEBOOKS = "codebooks"
FEED_DOCUMENTS = 20_000  # documents per `index_texts` call (about 84,000 sentences)


def _settings(workdir: Path, overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "faiss_index": DEFAULT_SCALE_INDEX,
        # Recall@10 >= 0.95 at a million needs a broad sentence search (0.888 at 512, 0.955 at 4096,
        # README "Scale"); passages only add candidates for the ranker and keep a narrower one.
        "faiss_ef_search": 4096,
        "faiss_passage_ef_search": 512,
        # ... and re-scores 4 x k of its hits with the stored vectors: near-ties that the graph's SQ8
        # codes reorder come back (recall 0.948 without it on the build of 2026-12-07, evening).
        "faiss_refine": 4,
        # Disk at a million: 48 bytes a token instead of int4's 192 (README "Scale"), with the codebook
        # `prepare_codebook` trains for the encoder when none ships for it.
        "token_code": "pq48",
    }
    values.update(overrides)
    values["index_dir"] = workdir / "index"
    if (workdir / CODEBOOKS).is_dir():
        values.setdefault("token_codebook_dir", workdir / CODEBOOKS)
    return Settings(**values)


def prepare_codebook(workdir: Path, overrides: dict[str, Any], squad: Path, log: Any = print) -> None:
    """Train the token codebook the scale settings name into WORKDIR/codebooks where none ships (the
    hashing encoder's), from the SQuAD file's contexts as the shipped ones are (`qa_service.codebooks`)."""
    settings = _settings(workdir, overrides)
    code, dimension = settings.token_code, encoder_for(settings).dimension
    if not code.startswith("pq") or dimension % int(code[2:]):  # no such codebook: int8 (logged)
        return
    codebooks.use_directory(settings.token_codebook_dir)
    if codebooks.load(settings.embedding_model, int(code[2:])) is not None:  # shipped, or in the setting's folder
        return
    info = codebooks.build(squad, settings.embedding_model, int(code[2:]), out_dir=workdir / CODEBOOKS)
    log(f"  token codebook {code} for {settings.embedding_model}: {info['tokens']:,} tokens of {squad.name}")


def phase_index(workdir: Path, sentences: int, overrides: dict[str, Any]) -> dict[str, Any]:
    service = QAService(_settings(workdir, overrides))
    service.warm_up()
    started = time.perf_counter()
    corpus = ZipfCorpus()
    indexed = 0
    # Fed in chunks, as `qa-service index` reads files one by one: the generated corpus is not held
    # in memory whole (about 190 MB at a million sentences) beside what indexing itself holds.
    documents = corpus.documents(sentences)
    while chunk := list(itertools.islice(documents, FEED_DOCUMENTS)):
        indexed += service.index_texts(chunk).sentences
    seconds = time.perf_counter() - started
    manifest = service.store.manifest()
    return {
        "corpus": corpus.description,
        "token_code": manifest.token_code,
        "sentences": indexed,
        "index_seconds": round(seconds, 1),
        "sentences_per_s": round(indexed / seconds, 1),
        "index_bytes_on_disk": directory_bytes(workdir / "index"),
        "indexing_peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _embedded(service: QAService) -> FaissSQLiteDocumentStore:
    """The scale test measures the embedded FAISS index (its vectors and SQLite rows)."""
    store = service.store
    if not isinstance(store, FaissSQLiteDocumentStore):
        raise TypeError("The scale test runs on the embedded store (QA_STORE=faiss).")
    return store


def _exact_top_k(service: QAService, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product top-k over every stored sentence vector, streamed from SQLite."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    with _embedded(service).db.connection() as conn:
        cursor = conn.execute("SELECT id, embedding FROM sentences ORDER BY id")
        while rows := cursor.fetchmany(20_000):  # bounded: this check must not dominate the phase's peak RSS
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = unblob_many([r[1] for r in rows], queries.shape[1])
            scores = queries @ vectors.T
            all_scores = np.concatenate([best_scores, scores], axis=1)
            all_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
            top = np.argsort(-all_scores, axis=1)[:, :k]
            best_scores = np.take_along_axis(all_scores, top, axis=1)
            best_ids = np.take_along_axis(all_ids, top, axis=1)
    return best_ids


def phase_query(workdir: Path, overrides: dict[str, Any], queries: int = 200, answers: int = 30) -> dict[str, Any]:
    """Vector search (question embedding + ANN) on `queries` questions; whole answers, whose BM25
    part scores every sentence that shares a word with the question, on the first `answers`."""
    settings = _settings(workdir, overrides)
    encoder = encoder_for(settings)
    encoder.embed_tokens(["Load the model before the baseline is taken."])
    baseline_mb = rss_mb()  # the process with its model: what the index adds is measured from here
    service = QAService(settings, create_index=False)
    service.warm_up()
    questions = ZipfCorpus().questions(queries + 20, service.store.sentence_count)
    for q in questions[:20]:  # warm: the first answers read an 8 GB store from disk (cold page cache)
        service.ask(q)
    ask_ms, search_ms = [], []
    for n, question in enumerate(questions[20:]):
        if n < answers:
            started = time.perf_counter()
            service.ask(question)
            ask_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        service.store.dense_sentences(encoder.embed([question])[0], 10)
        search_ms.append((time.perf_counter() - started) * 1000)
    vectors = encoder.embed(questions[20:])  # for recall: the same questions, approximate vs exact
    loaded_mb = rss_mb()
    n = service.store.sentence_count
    vector_bytes = vector_code_bytes(_embedded(service).sentence_index.index)
    approx = np.array([[i for i, _ in service.store.dense_sentences(v, 10)] for v in vectors])
    exact = _exact_top_k(service, vectors, 10)
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)]))
    per_sentence = (loaded_mb - baseline_mb) * 1024 * 1024 / n - vector_bytes
    return {
        "faiss_index": settings.faiss_index,
        "ef_search": settings.faiss_ef_search,
        "sentences_loaded": n,
        "answers_timed": len(ask_ms),
        "answer_p50_ms": round(float(np.percentile(ask_ms, 50)), 2),
        "answer_p95_ms": round(float(np.percentile(ask_ms, 95)), 2),
        "search_p50_ms": round(float(np.percentile(search_ms, 50)), 2),
        "search_p95_ms": round(float(np.percentile(search_ms, 95)), 2),
        "recall_at_10": round(recall, 4),
        "vector_bytes_per_sentence": int(vector_bytes),
        "rss_serving_mb": round(loaded_mb, 1),
        "resident_bytes_per_sentence_beyond_vector": round(per_sentence, 1),
        "query_peak_rss_mb": round(peak_rss_mb(), 1),
    }


def vector_code_bytes(index: faiss.Index) -> int:
    """Bytes one vector takes in the index's storage (the graph or lists around it excluded)."""
    base = faiss.downcast_index(getattr(index, "index", index))
    storage = faiss.downcast_index(base.storage) if hasattr(base, "storage") and base.storage else base
    return int(storage.sa_code_size())


def phase_mutate(workdir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Delete one document and update another; both must show in answers at once."""
    service = QAService(_settings(workdir, overrides), create_index=False)
    service.warm_up()
    documents = service.store.list_documents()
    victim, changed = documents[len(documents) // 2], documents[len(documents) // 3]
    victim_text = service.document_text(victim.id)
    first_sentence = victim_text.split(". ")[0] + "."
    started = time.perf_counter()
    service.delete_document(victim.id)
    delete_s = time.perf_counter() - started
    after = service.ask_detailed(first_sentence)
    deleted_gone = all(d.meta["document_id"] != victim.id for d in after.ranked)
    marker = "The harbour master confirmed that the lighthouse zebra festival moved to Reykjavik."
    started = time.perf_counter()
    service.index_texts([TextSource(source=changed.source, text=marker, origin=changed.origin)])
    update_s = time.perf_counter() - started
    found = service.ask_detailed("Where did the lighthouse zebra festival move?")
    updated_found = bool(found.ranked) and found.ranked[0].content == marker
    return {
        "delete_seconds": round(delete_s, 2),
        "update_seconds": round(update_s, 2),
        "deleted_document_gone": deleted_gone,
        "updated_document_found": updated_found,
        "mutate_peak_rss_mb": round(peak_rss_mb(), 1),
    }


PHASES: dict[str, Callable[[Path, dict[str, Any]], dict[str, Any]]] = {"query": phase_query, "mutate": phase_mutate}


def run_scale(
    sentences: int, workdir: Path, overrides: dict[str, Any], squad: Path, log: Any = print
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    for previous in (workdir / "index", workdir / CODEBOOKS):  # never measure an earlier run's index
        shutil.rmtree(previous, ignore_errors=True)
    prepare_codebook(workdir, overrides, squad, log)
    result: dict[str, Any] = {"sentences": sentences}
    for phase in ("index", "query", "mutate"):
        out = workdir / f"{phase}.json"
        args = [sys.executable, "-m", "qa_service.benchmark.scale", phase, str(workdir), json.dumps(overrides)]
        if phase == "index":
            args.append(str(sentences))
        with (workdir / f"{phase}.log").open("wb") as logfile:
            done = subprocess.run(args, stdout=logfile, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"scale phase {phase} failed:\n{(workdir / f'{phase}.log').read_text()[-3000:]}")
        data = json.loads(out.read_text())
        log(f"  {phase}: {json.dumps(data)}")
        result.update(data)
    result["peak_rss_mb"] = max(
        result.pop(k) for k in ("indexing_peak_rss_mb", "query_peak_rss_mb", "mutate_peak_rss_mb")
    )
    return result


def main() -> None:
    phase, workdir, overrides = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    data = phase_index(workdir, int(sys.argv[4]), overrides) if phase == "index" else PHASES[phase](workdir, overrides)
    (workdir / f"{phase}.json").write_text(json.dumps(data))


if __name__ == "__main__":
    main()
