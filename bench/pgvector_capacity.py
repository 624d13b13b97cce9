"""Capacity of the two backends on the SQuAD subset: `make bench-pgvector`.

Starts PostgreSQL 18 + pgvector on loopback (the test wheel, durable settings), then for each backend:
the SQuAD eval (answer quality, in-process query latency, indexing time) and HTTP load at
concurrency 8 against `qa-service serve` (pgvector: one replica, then two replicas over the one
database). Writes bench-results/pgvector.json and prints it.

Needs the test extras (`make install`); measures on whatever machine it runs on, so compare numbers
from one run only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_service.benchmark.loadgen import LoadResult, run_load  # noqa: E402
from qa_service.benchmark.servers import free_port, running  # noqa: E402
from qa_service.benchmark.zipf_corpus import ZipfCorpus  # noqa: E402
from qa_service.evaluation.squad import evaluate_squad, load_squad  # noqa: E402
from qa_service.pipeline.builders import encoder_for  # noqa: E402
from qa_service.service import QAService, TextSource  # noqa: E402
from qa_service.settings import Settings  # noqa: E402
from tests.postgres_server import LocalPostgres  # noqa: E402

SQUAD = ROOT.parent / "shared" / "eval" / "squad2-dev-subset.json"
OUT = ROOT / "bench-results"
REQUESTS, CONCURRENCY, WARMUP = 400, 8, 24
STEADY_WARMUP, STEADY_TIMED = 300, 100  # the scale test's steady-state answers: untimed, then timed


def http_load(bases: list[str], questions: list[str]) -> dict[str, float]:
    """Closed-loop load spread evenly over `bases` (one load generator per replica, in parallel)."""
    share = CONCURRENCY // len(bases)
    results: list[LoadResult] = []
    threads = []
    for i, base in enumerate(bases):
        bodies = [{"message": q} for q in questions[i :: len(bases)]]
        threads.append(
            threading.Thread(target=lambda b=base, q=bodies: results.append(run_load(b + "/v1/chat", q, share, WARMUP)))
        )
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    requests = sum(r.requests for r in results)
    return {
        "replicas": len(bases),
        "concurrency": CONCURRENCY,
        "throughput_rps": round(requests / max(r.seconds for r in results), 1),
        "p50_ms": round(max(r.p50_ms for r in results), 1),
        "p95_ms": round(max(r.p95_ms for r in results), 1),
        "errors": sum(r.errors for r in results),
    }


def exact_top_k(url: str, queries: np.ndarray, k: int) -> list[set[str]]:
    """Each query's exact top `k` sentence ids by inner product over every stored vector, streamed
    through a server-side cursor of its own connection (no statement timeout: a million rows)."""
    import psycopg
    from pgvector.psycopg import register_vector

    best: list[list[tuple[float, str]]] = [[] for _ in range(len(queries))]
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor(name="exact", binary=True) as cur:
            cur.itersize = 20_000
            cur.execute("SELECT id, embedding FROM qa_sentences")
            while rows := cur.fetchmany(20_000):
                matrix = np.stack([np.asarray(r[1].to_numpy(), dtype=np.float32) for r in rows])
                scores = matrix @ queries.T
                for j in range(len(queries)):
                    top = np.argsort(-scores[:, j])[:k]
                    best[j] = sorted(best[j] + [(float(scores[i, j]), rows[i][0]) for i in top], reverse=True)[:k]
    return [{key for _, key in found} for found in best]


def scale(url: str, sentences: int) -> dict[str, object]:
    """The scale test's synthetic corpus (hashing vectors at the model's width, as in `make bench`'s
    1M run) in PostgreSQL: indexing rate, HNSW search and whole-answer latency, recall@10 against exact
    search over the same stored vectors, delete and update times."""
    # one bulk load (indexes built after the rows), with room for a million-vector HNSW graph in memory
    settings = Settings(
        store="pgvector",
        database_url=url,
        embedding_model="hash:384",
        index_batch_chars=5_000_000,
        pgvector_maintenance_work_mem="3GB",
    )
    service = QAService(settings)
    corpus = ZipfCorpus()
    sources = list(corpus.documents(sentences))
    started = time.perf_counter()
    report = service.index_texts(sources)
    index_s = time.perf_counter() - started
    encoder = encoder_for(settings)
    questions = corpus.questions(130 + STEADY_WARMUP + STEADY_TIMED, sentences)
    for q in questions[:5]:
        service.ask(q)
    answer_ms, search_ms = [], []
    for n, question in enumerate(questions[30:130]):
        if n < 30:
            t = time.perf_counter()
            service.ask(question)
            answer_ms.append((time.perf_counter() - t) * 1000)
        vector = encoder.embed([question])[0]
        t = time.perf_counter()
        service.store.dense_sentences(vector, 10)
        search_ms.append((time.perf_counter() - t) * 1000)
    print(
        f"pgvector scale: {report.sentences} sentences indexed in {index_s:.0f} s; answer right after the "
        f"load p50 {np.percentile(answer_ms, 50):.1f} ms, p95 {np.percentile(answer_ms, 95):.1f} ms",
        flush=True,
    )
    # Steady state: a server that has answered a few hundred other questions has the HNSW graphs' upper
    # layers and the hot heap pages in shared_buffers; these questions are all distinct and new.
    for question in questions[130 : 130 + STEADY_WARMUP]:
        service.ask(question)
    steady_ms = []
    for question in questions[130 + STEADY_WARMUP :]:
        t = time.perf_counter()
        service.ask(question)
        steady_ms.append((time.perf_counter() - t) * 1000)
    print(
        f"pgvector scale: steady answer (after {STEADY_WARMUP} other questions) p50 "
        f"{np.percentile(steady_ms, 50):.1f} ms, p95 {np.percentile(steady_ms, 95):.1f} ms",
        flush=True,
    )
    vectors = encoder.embed(questions[30:130])
    approx = [{i for i, _ in service.store.dense_sentences(v, 10)} for v in vectors]
    exact = exact_top_k(url, vectors, 10)
    recall = float(np.mean([len(a & e) / 10 for a, e in zip(approx, exact, strict=True)]))
    documents = service.documents()
    t = time.perf_counter()
    service.delete_document(documents[len(documents) // 2].id)
    delete_s = time.perf_counter() - t
    changed = documents[len(documents) // 3]
    t = time.perf_counter()
    service.index_texts(
        [TextSource(source=changed.source, text="The lighthouse zebra festival moved.", origin=changed.origin)]
    )
    update_s = time.perf_counter() - t
    with service.store.db.connection() as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
    service.store.close()
    return {
        "sentences": report.sentences,
        "index_seconds": round(index_s, 1),
        "sentences_per_s": round(report.sentences / index_s, 1),
        "search_p50_ms": round(float(np.percentile(search_ms, 50)), 2),
        "search_p95_ms": round(float(np.percentile(search_ms, 95)), 2),
        "answer_p50_ms": round(float(np.percentile(answer_ms, 50)), 1),
        "answer_p95_ms": round(float(np.percentile(answer_ms, 95)), 1),
        "steady_answers": len(steady_ms),
        "steady_answer_p50_ms": round(float(np.percentile(steady_ms, 50)), 1),
        "steady_answer_p95_ms": round(float(np.percentile(steady_ms, 95)), 1),
        "recall_at_10": round(recall, 4),
        "delete_seconds": round(delete_s, 2),
        "update_seconds": round(update_s, 2),
        "database_bytes": int(size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=0, help="also index N synthetic sentences into PostgreSQL")
    parser.add_argument("--parts", default="squad", help="squad, scale or squad,scale")
    parser.add_argument(
        "--shared-buffers",
        default="4GB",
        help="PostgreSQL's shared_buffers (its default, 128MB, is far below a million sentences' 2 GB heap "
        "and 2 GB of HNSW graphs; pgvector's advice is about a quarter of the machine's memory)",
    )
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("qa_service.store.postgres.bulk").setLevel(logging.INFO)  # when each index build starts
    OUT.mkdir(exist_ok=True)
    _, questions = load_squad(SQUAD)
    texts = [q.text for q in questions][:REQUESTS]
    pg = LocalPostgres(durable=True, options={"shared_buffers": args.shared_buffers}).start()
    report: dict[str, object] = {"machine_cores": os.cpu_count(), "shared_buffers": args.shared_buffers}
    try:
        if "scale" in args.parts and args.scale:
            report["pgvector_scale"] = scale(pg.create_database("scale"), args.scale)
            print("pgvector scale", json.dumps(report["pgvector_scale"]), flush=True)
        url = pg.create_database("squad")
        for backend in ("faiss", "pgvector") if "squad" in args.parts else ():
            index_dir = OUT / f"capacity-{backend}-index"
            settings = Settings(store=backend, database_url=url if backend == "pgvector" else None, index_dir=index_dir)
            started = time.perf_counter()
            evaluation = evaluate_squad(SQUAD, settings)
            print(backend, "eval", json.dumps(evaluation), f"({time.perf_counter() - started:.0f} s)", flush=True)
            # The eval's index is temporary for the embedded store; index the same corpus to serve it.
            service = QAService(settings)
            if backend == "faiss":
                documents, _ = load_squad(SQUAD)
                service.index_texts(documents)
            service.store.close()
            env = {
                "QA_STORE": backend,
                "QA_INDEX_DIR": str(index_dir),
                "QA_RATE_LIMIT_BURST": "100000",
                "QA_RATE_LIMIT_PER_MINUTE": "1000000",
                "QA_LOG_JSON": "false",
            }
            if backend == "pgvector":
                env["QA_DATABASE_URL"] = url
            loads = []
            for replicas in (1, 2) if backend == "pgvector" else (1,):
                with ExitStackServers(env, replicas, OUT) as bases:
                    loads.append(http_load(bases, texts))
                print(backend, "http", json.dumps(loads[-1]), flush=True)
            report[backend] = {"eval": evaluation, "http": loads}
    finally:
        pg.stop()
    name = "pgvector.json" if "squad" in args.parts else "pgvector-scale.json"
    (OUT / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


class ExitStackServers:
    """`replicas` processes of `qa-service serve` with `env`; yields their base URLs."""

    def __init__(self, env: dict[str, str], replicas: int, log_dir: Path) -> None:
        from contextlib import ExitStack

        self.env, self.replicas, self.log_dir, self.stack = env, replicas, log_dir, ExitStack()

    def __enter__(self) -> list[str]:
        bases = []
        for i in range(self.replicas):
            port = free_port()
            command = [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(port)]
            log = self.log_dir / f"capacity-{self.env['QA_STORE']}-{i}.log"
            bases.append(self.stack.enter_context(running(command, port, "/readyz", log, env=self.env)).base_url)
        return bases

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


if __name__ == "__main__":
    main()
