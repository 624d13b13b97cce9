"""The PostgreSQL keyword leg, old against new: `python bench/pg_lexical.py [--sentences N]`.

Starts PostgreSQL + pgvector on loopback (the test wheel, durable settings), indexes N sentences of
the Zipf corpus (qa_service/benchmark/zipf_corpus.py) with the hashing encoder `hash:64` (keeps
indexing time down; the keyword leg does not depend on the encoder; rows are bulk-loaded, then the
HNSW and GIN indexes are built once, each build timed), then, back to back on the same
database and alternating question by question:

- the keyword leg alone (`keyword_sentences(q, k)`, k = sentence_candidates): `ts_rank_cd` over the
  stored tsvector (ranks every match) against BM25 sparse vectors under the HNSW index;
- the whole answer (`QAService.ask`, question embedding included) with each leg;
- recall@k of the HNSW leg against exact BM25 over the same stored vectors (a sequential scan), and
  the overlap of the BM25 top-k with ts_rank_cd's top-k;
- hash collisions among the distinct terms of `qa_term_df`.

Prints JSON (and writes bench-results/pg_lexical.json). Timings are on whatever machine runs it;
compare figures of one run only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg import sql  # noqa: E402

from qa_service.benchmark.zipf_corpus import ZipfCorpus  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.settings import Settings  # noqa: E402
from qa_service.store.postgres import bm25  # noqa: E402
from tests.postgres_server import LocalPostgres  # noqa: E402

OUT = ROOT / "bench-results"


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p95_ms": round(float(np.percentile(values, 95)), 2)}


def _exact(store: object, text: str, k: int) -> list[str]:
    """Exact BM25 top-k over the stored vectors (an ORDER BY the index cannot serve)."""
    words = bm25.query_terms(text)
    vector = bm25.query_vector(words, store.term_frequencies(words), store.sentence_count)  # type: ignore[attr-defined]
    query = sql.SQL(
        "SELECT id FROM (SELECT id, -(bm25 <#> %s::sparsevec) AS score FROM {t}) s WHERE score > 0 "
        "ORDER BY score + 0 DESC, id LIMIT %s"
    ).format(t=sql.Identifier(store.schema, "qa_sentences"))  # type: ignore[attr-defined]
    return [r["id"] for r in store.db.rows(query, (vector, k))]  # type: ignore[attr-defined]


def measure(url: str, sentences: int, questions_n: int) -> dict[str, object]:
    settings = Settings(store="pgvector", database_url=url, embedding_model="hash:64", index_batch_chars=5_000_000)
    service = QAService(settings)
    corpus = ZipfCorpus()
    store = service.store
    with store.db.connection() as conn:  # bulk load, then build the indexes (each once, not row by row)
        definitions = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename IN "
                "('qa_sentences', 'qa_passages') AND indexdef ~ 'USING (hnsw|gin)'"
            )
        ]
        for definition in definitions:
            conn.execute("DROP INDEX public." + definition.split(" INDEX ")[1].split(" ON ")[0])
    started = time.perf_counter()
    report = service.index_texts(list(corpus.documents(sentences)))
    load_s = time.perf_counter() - started
    with store.db.connection() as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET statement_timeout = 0")
        built: dict[str, float] = {}
        for definition in definitions:
            t = time.perf_counter()
            conn.execute(definition)
            built[definition.split(" INDEX ")[1].split(" ON ")[0]] = round(time.perf_counter() - t, 1)
        conn.execute("ANALYZE public.qa_sentences")
        conn.execute("ANALYZE public.qa_passages")
    index_s = time.perf_counter() - started
    k = settings.sentence_candidates
    questions = corpus.questions(questions_n + 10, sentences)
    legs = ("ts_rank_cd", "bm25")
    for q in questions[:10]:  # warm caches for both legs
        for leg in legs:
            store.keyword_ranking = leg
            store.keyword_sentences(q, k)
            service.ask(q)
    keyword_ms: dict[str, list[float]] = {leg: [] for leg in legs}
    answer_ms: dict[str, list[float]] = {leg: [] for leg in legs}
    tops: dict[str, list[list[str]]] = {leg: [] for leg in legs}
    for n, q in enumerate(questions[10:]):
        for leg in legs if n % 2 == 0 else legs[::-1]:
            store.keyword_ranking = leg
            t = time.perf_counter()
            hits = store.keyword_sentences(q, k)
            keyword_ms[leg].append((time.perf_counter() - t) * 1000)
            tops[leg].append([i for i, _ in hits])
            t = time.perf_counter()
            service.ask(q)
            answer_ms[leg].append((time.perf_counter() - t) * 1000)
    store.keyword_ranking = "bm25"
    recall, overlap, overlap10 = [], [], []
    for q, approx, old in zip(questions[10:], tops["bm25"], tops["ts_rank_cd"], strict=True):
        exact = _exact(store, q, k)
        if exact:
            recall.append(len(set(approx) & set(exact)) / len(exact))
        if old:
            overlap.append(len(set(approx) & set(old)) / min(len(old), k))
            overlap10.append(len(set(exact[:10]) & set(old[:10])) / min(len(old), 10))
    terms = [r["term"] for r in store.db.rows(f"SELECT term FROM {store.t.term_df}")]
    ids = {bm25.term_id(t) for t in terms}
    with store.db.connection() as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
        bm25_index = conn.execute("SELECT pg_relation_size('public.qa_sentences_bm25')").fetchone()[0]  # type: ignore[index]
    service.close()
    return {
        "sentences": report.sentences,
        "encoder": "hash:64",
        "load_seconds": round(load_s, 1),
        "index_build_seconds": built,
        "index_seconds": round(index_s, 1),
        "questions": questions_n,
        "k": k,
        "keyword_leg": {leg: _percentiles(v) for leg, v in keyword_ms.items()},
        "whole_answer": {leg: _percentiles(v) for leg, v in answer_ms.items()},
        "bm25_hnsw_recall_at_k_vs_exact_bm25": round(float(np.mean(recall)), 4),
        "bm25_top_k_overlap_with_ts_rank_cd": round(float(np.mean(overlap)), 4),
        "exact_bm25_top10_overlap_with_ts_rank_cd": round(float(np.mean(overlap10)), 4),
        "distinct_terms": len(terms),
        "hash_collisions": len(terms) - len(ids),
        "database_bytes": int(size),
        "bm25_index_bytes": int(bm25_index),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args()
    pg = LocalPostgres(durable=True).start()
    try:
        result = measure(pg.create_database("lexical"), args.sentences, args.questions)
    finally:
        pg.stop()
    OUT.mkdir(exist_ok=True)
    (OUT / "pg_lexical.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
