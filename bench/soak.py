"""`make soak`: the churn of tests/test_churn.py for a long time at bounded rates, with figures.

    .venv/bin/python bench/soak.py --minutes 30           # the real model over the seeds
    .venv/bin/python bench/soak.py --minutes 5 --hash     # the hashing encoder (CPU for the rest)

Prints requests served, latency p50/p95/p99, 5xx count, citation and restart checks, and the server's
RSS at start (after warm-up), after the first tenth of the run, and at the end. Exit status 1 when a
check fails or RSS grew by 10 % or more from the first tenth to the end.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_service.benchmark.churn import Churn, Server, verify_after_restart  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.settings import Settings  # noqa: E402

ADMIN = "soak-admin-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--askers", type=int, default=3, help="client threads asking")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds each client waits between requests")
    parser.add_argument("--hash", action="store_true", help="hashing encoder instead of the real model")
    args = parser.parse_args()
    env = {
        "QA_ADMIN_API_KEY": ADMIN,
        "QA_RATE_LIMIT_BURST": "1000000",
        "QA_LOG_JSON": "false",
    }
    if args.hash:
        env |= {"QA_EMBEDDING_MODEL": "hash:64", "QA_ABSTENTION__THRESHOLD": "0"}
    with tempfile.TemporaryDirectory(prefix="qa-soak-") as tmp:
        index_dir = Path(tmp) / "index"
        extra = {"embedding_model": "hash:64"} if args.hash else {}
        QAService(Settings(index_dir=index_dir, **extra)).index_paths([ROOT / "seeds"])  # type: ignore[arg-type]
        server = Server(index_dir, free_port(), env).start()
        try:
            auth = {"Authorization": f"Bearer {ADMIN}"}
            listed = httpx.get(f"{server.base}/v1/documents", headers=auth).json()["documents"]
            fixed = {
                d["id"]: httpx.get(f"{server.base}/v1/documents/{d['id']}", headers=auth).json()["text"] for d in listed
            }
            churn = Churn(server.base, ADMIN, fixed, pause=args.pause)
            seconds = args.minutes * 60
            rss = {"start": server.rss_mb()}
            series: list[float] = []  # RSS every tenth of the run: does growth level off?
            started = time.monotonic()

            def sample_rss() -> None:
                while not churn.stop.wait(seconds / 10):
                    series.append(round(server.rss_mb(), 1))
                    rss.setdefault("first tenth", series[0])

            threading.Thread(target=sample_rss, daemon=True).start()
            stats = churn.run(seconds, askers=args.askers)
            elapsed = time.monotonic() - started
            rss["end"] = server.rss_mb()
            server.kill()  # and a restart: acknowledged uploads must all be there
            server.start()
            restart_problems = verify_after_restart(server.base, ADMIN, churn.ledger)
        finally:
            server.stop()
    latencies = np.array(stats.latencies) * 1000
    growth = (rss["end"] - rss.get("first tenth", rss["start"])) / rss.get("first tenth", rss["start"])
    report = {
        "minutes": round(elapsed / 60, 2),
        "model": "hash:64" if args.hash else "all-MiniLM-L6-v2 (onnx-int8)",
        "askers": args.askers,
        "requests": stats.requests,
        "requests_per_second": round(stats.requests / elapsed, 1),
        "uploads_acknowledged": stats.uploads,
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "5xx": len(stats.server_errors),
        "bad_citations": len(stats.bad_citations),
        "other_failures": len(stats.other_failures),
        "restart_problems": len(restart_problems),
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "rss_mb_each_tenth": series,
        "rss_growth_after_first_tenth": f"{growth:.1%}",
    }
    print(json.dumps(report, indent=2))
    for name, items in (
        ("5xx", stats.server_errors),
        ("bad citations", stats.bad_citations),
        ("other failures", stats.other_failures),
        ("after restart", restart_problems),
    ):
        for item in items[:10]:
            print(f"{name}: {item}")
    failed = stats.server_errors or stats.bad_citations or stats.other_failures or restart_problems
    return 1 if failed or growth >= 0.10 else 0


if __name__ == "__main__":
    sys.exit(main())
