"""What the largest requests cost now (issue 14, finding 1): seconds and RSS growth of the biggest
accepted /v1/chat/completions and /v1/chat requests, and of the rejected ones, over the seeds.

    .venv/bin/python bench/max_request.py            # the real model (QA_EMBEDDING_MODEL default)
    .venv/bin/python bench/max_request.py --hash     # the hashing test encoder
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_service.api.app import create_app  # noqa: E402
from qa_service.service import QAService  # noqa: E402
from qa_service.settings import Settings  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hash", action="store_true", help="hashing encoder instead of the real model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"embedding_model": "hash:64"} if args.hash else {}
        settings = Settings(index_dir=Path(tmp) / "index", seeds_dir=ROOT / "seeds", rate_limit_burst=1000, **extra)
        QAService(settings).index_paths([ROOT / "seeds"])
        with TestClient(create_app(settings)) as client:
            limit, turns, total = settings.max_message_chars, settings.max_history_turns, settings.max_history_chars
            words = [f"troops{n} Kherson{n} withdrew{n} negotiations{n}" for n in range(5000)]
            each = total // turns
            history = []
            for n in range(turns):  # the most history accepted: every turn a user message of distinct words
                text = " ".join(words[n * 40 :])[: min(each, limit)]
                history.append({"role": "user", "content": text})
            question = ("What did they say about " + " ".join(words))[:limit]
            cases = {
                "normal question": ("/v1/chat", {"message": "How many troops withdrew from Kherson?"}),
                f"largest accepted completion ({turns} turns, {sum(len(h['content']) for h in history)} chars)": (
                    "/v1/chat/completions",
                    {"model": "m", "messages": [*history, {"role": "user", "content": question}]},
                ),
                "largest accepted /v1/chat (990 KB of spaces + a 2,000-char question)": (
                    "/v1/chat",
                    {"message": " " * 990_000 + question},
                ),
                "rejected: 980 KB of history": (
                    "/v1/chat/completions",
                    {
                        "model": "m",
                        "messages": [{"role": "user", "content": "x " * 490_000}, {"role": "user", "content": "Why?"}],
                    },
                ),
            }
            for name, (path, body) in cases.items():
                before = rss_mb()
                started = time.perf_counter()
                status = client.post(path, json=body).status_code
                seconds = time.perf_counter() - started
                print(f"{name}: HTTP {status}, {seconds:.3f} s, max RSS +{rss_mb() - before:.0f} MB")


if __name__ == "__main__":
    main()
