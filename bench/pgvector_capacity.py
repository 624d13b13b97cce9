"""Capacity of the two backends on the SQuAD subset: `make bench-pgvector`.

Starts PostgreSQL 18 + pgvector on loopback (the test wheel, durable settings), then for each backend:
the SQuAD eval (answer quality, in-process query latency, indexing time) and HTTP load at
concurrency 8 against `qa-service serve` (pgvector: one replica, then two replicas over the one
database). Writes bench-results/pgvector.json and prints it.

Needs the test extras (`make install`); measures on whatever machine it runs on, so compare numbers
from one run only.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_service.benchmark.loadgen import LoadResult, run_load  # noqa: E402
from qa_service.benchmark.servers import free_port, running  # noqa: E402
from qa_service.evaluation.squad import evaluate_squad, load_squad  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.settings import Settings  # noqa: E402
from tests.postgres_server import LocalPostgres  # noqa: E402

SQUAD = ROOT.parent / "shared" / "eval" / "squad2-dev-subset.json"
OUT = ROOT / "bench-results"
REQUESTS, CONCURRENCY, WARMUP = 400, 8, 24


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


def main() -> None:
    OUT.mkdir(exist_ok=True)
    _, questions = load_squad(SQUAD)
    texts = [q.text for q in questions][:REQUESTS]
    pg = LocalPostgres(durable=True).start()
    report: dict[str, object] = {"machine_cores": os.cpu_count()}
    try:
        url = pg.create_database("squad")
        for backend in ("faiss", "pgvector"):
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
    (OUT / "pgvector.json").write_text(json.dumps(report, indent=2) + "\n")
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
