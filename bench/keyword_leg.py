"""Keyword leg of the embedded store at scale (issue 17): SQLite FTS5 (schema 3's `bm25()` over every
match) against tantivy (schema 4: BM25 with block-max WAND top-k), back to back on one corpus.

The realistic Zipf corpus (`ZipfCorpus`) is indexed once with the `hash:64` test encoder (the real model
takes ~15 minutes for 200,000 sentences on a quiet machine; the keyword leg does not depend on it), into a
`Flat` FAISS index. The FTS5 tables schema 3 kept are then filled from the same rows, so both legs search
the same texts. Each question is timed on both legs alternately (A, B, B, A, ...) in one process:

- keyword leg alone: `keyword_sentences(question, sentence_candidates)` as the keyword retriever calls it;
- whole answer: `QAService.ask`, with the store's keyword methods (the retriever's and the ranker's
  restricted BM25 features) on FTS5 or on tantivy.

    .venv/bin/python bench/keyword_leg.py --sentences 200000 [--questions 200] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_service.benchmark.zipf_corpus import ZipfCorpus  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.settings import Settings  # noqa: E402
from qa_service.store.embedded.document_store import FaissSQLiteDocumentStore  # noqa: E402
from qa_service.store.keywords import keyword_terms  # noqa: E402

_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS bench_sentences_fts USING fts5(text, tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS bench_passages_fts USING fts5(text, tokenize='porter unicode61');
DELETE FROM bench_sentences_fts;
DELETE FROM bench_passages_fts;
INSERT INTO bench_sentences_fts(rowid, text) SELECT id, text FROM sentences;
INSERT INTO bench_passages_fts(rowid, text) SELECT p.id, d.source || char(10) ||
    substr(d.text, p.start + 1, p."end" - p.start) FROM passages p JOIN documents d ON d.id = p.document_id;
"""


def fts5_search(
    conn: sqlite3.Connection, table: str, text: str, limit: int, restrict: list[int] | None = None
) -> list[tuple[int, float]]:
    """Schema 3's `Database.keyword_search`, verbatim but for the table names."""
    words = keyword_terms(text)
    if not words:
        return []
    sql = f"SELECT rowid, bm25({table}) AS score FROM {table} WHERE {table} MATCH ?"
    params: list[object] = [" OR ".join(f'"{w}"' for w in words)]
    if restrict is not None:
        if not restrict:
            return []
        sql += f" AND rowid IN ({','.join('?' * len(restrict))})"
        params.extend(restrict)
    sql += " ORDER BY score LIMIT ?"
    params.append(limit)
    return [(int(r[0]), -float(r[1])) for r in conn.execute(sql, params)]


def _stats(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def _alternate(questions: list[str], legs: dict[str, Callable[[str], Any]]) -> dict[str, dict[str, float]]:
    names = list(legs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n, question in enumerate(questions):
        for name in names if n % 2 == 0 else reversed(names):
            started = time.perf_counter()
            legs[name](question)
            times[name].append((time.perf_counter() - started) * 1000)
    return {n: _stats(t) for n, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=200_000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--answers", type=int, default=60)
    parser.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the index here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="keyword-leg-"))
    settings = Settings(
        index_dir=workdir / "index", embedding_model="hash:64", faiss_index="Flat", index_batch_chars=5_000_000
    )
    service = QAService(settings)
    store = service.store
    assert isinstance(store, FaissSQLiteDocumentStore), "the embedded store (QA_STORE=faiss)"
    index_s = None
    if store.sentence_count < args.sentences:
        started = time.perf_counter()
        service.index_texts(list(ZipfCorpus().documents(args.sentences)))
        index_s = round(time.perf_counter() - started, 1)
    fts = sqlite3.connect(settings.index_dir / "store.sqlite")
    started = time.perf_counter()
    fts.executescript(_FTS)
    fts.commit()
    fts_build_s = round(time.perf_counter() - started, 1)

    n = store.sentence_count
    k = settings.sentence_candidates
    questions = ZipfCorpus().questions(args.questions + 10, n)
    agree = [
        len(
            {i for i, _ in store.keyword_sentences(q, 10)}
            & {i for i, _ in fts5_search(fts, "bench_sentences_fts", q, 10)}
        )
        / 10
        for q in questions[:50]
    ]
    leg = _alternate(
        questions[10:],
        {
            "fts5": lambda q: fts5_search(fts, "bench_sentences_fts", q, k),
            "tantivy": lambda q: store.keyword_sentences(q, k),
        },
    )
    tantivy_methods = (store.keyword_sentences, store.keyword_passages)
    fts_methods = (
        lambda text, limit, restrict=None: fts5_search(fts, "bench_sentences_fts", text, limit, restrict),
        lambda text, limit, restrict=None: fts5_search(fts, "bench_passages_fts", text, limit, restrict),
    )

    def answer_with(methods: tuple[Callable[..., Any], Callable[..., Any]]) -> Callable[[str], Any]:
        def ask(question: str) -> Any:
            store.keyword_sentences, store.keyword_passages = methods  # type: ignore[method-assign]
            return service.ask(question)

        return ask

    for q in questions[:5]:
        answer_with(fts_methods)(q)
        answer_with(tantivy_methods)(q)
    whole = _alternate(
        questions[10 : 10 + args.answers], {"fts5": answer_with(fts_methods), "tantivy": answer_with(tantivy_methods)}
    )
    report = {
        "corpus": ZipfCorpus().description,
        "sentences": n,
        "encoder": "hash:64 (keyword timing only), FAISS Flat",
        "index_seconds": index_s,
        "fts5_build_seconds": fts_build_s,
        "keyword_k": k,
        "top10_overlap_tantivy_vs_fts5": round(float(np.mean(agree)), 3),
        "keyword_leg": leg,
        "whole_answer": whole,
        "questions": len(questions) - 10,
        "answers": args.answers,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
